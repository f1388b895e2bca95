"""python manage.py reconcile: one reconcile pass now (beat runs it every RECONCILE_INTERVAL_SECONDS)."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandParser

from webapp.operations.services import reconcile


class Command(BaseCommand):
    help = (
        "Re-send lost work (stale pending images, missing or unreadable local features, analysis), re-index "
        "images missing from Milvus, delete orphan vectors, and print the drift found."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--stale-seconds",
            type=int,
            default=None,
            help="work older than this counts as lost (default RECONCILE_STALE_SECONDS)",
        )

    def handle(self, *args: object, stale_seconds: int | None, **options: object) -> None:
        outcome = reconcile(stale_seconds=stale_seconds)
        if outcome.run is None:
            self.stdout.write("another reconcile run is in progress; nothing done")
            return
        run = outcome.run
        rows = [
            ("pending images re-sent", run.requeued_pending),
            ("missing local features re-extracted", run.missing_local_features),
            ("unreadable local features re-extracted", run.unreadable_local_features),
            ("indexed images missing from Milvus, re-indexed", run.missing_vectors),
            ("orphan vectors deleted from Milvus", run.orphan_vectors),
            ("analyses re-sent", run.stale_analysis),
        ]
        for label, count in rows:
            self.stdout.write(f"{label:<50} {count}")
        self.stdout.write(
            f"{'catalogue indexed / Milvus rows':<50} {run.catalogue_indexed} / {run.vector_rows}"
        )
        self.stdout.write(f"{'drift':<50} {run.drift}")
        if run.error:
            self.stderr.write(f"incomplete: {run.error}")
