"""Re-create the active model's Milvus collection with the current schema and re-index the collection."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from webapp.embeddings.services import rebuild_collection


class Command(BaseCommand):
    help = (
        "Drop and re-create the active model's Milvus collection with the current schema (the scalar "
        "fields date and place filters need), then queue every searchable image for indexing."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        queued = rebuild_collection()
        self.stdout.write(f"collection re-created; {queued} images queued for indexing")
