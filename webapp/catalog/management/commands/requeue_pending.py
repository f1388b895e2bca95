"""python manage.py requeue_pending: send indexing tasks again for images still waiting (e.g. after a
broker outage at upload time)."""

from __future__ import annotations

from django.core.management.base import BaseCommand
from django.db import transaction

from webapp.catalog.models import Image
from webapp.catalog.services import schedule_indexing


class Command(BaseCommand):
    help = "Queue indexing (embedding and local features) for every image whose status is still pending."

    def handle(self, *args: object, **options: object) -> None:
        ids = list(
            Image.objects.filter(status=Image.Status.PENDING).order_by("pk").values_list("pk", flat=True)
        )
        with transaction.atomic():
            schedule_indexing(ids)
        self.stdout.write(f"queued {len(ids)} pending images")
