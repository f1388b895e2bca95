"""python manage.py analyse_collection [--landmark NAME ...]: re-run the dataset analysis in the workers."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError, CommandParser

from webapp.catalog.models import Landmark
from webapp.curation.analysis import queue_collection_analysis


class Command(BaseCommand):
    help = "Queue the analysis (quality, duplicates, label noise) of the collection or of landmarks."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--landmark", action="append", default=[], help="landmark name (repeatable)")

    def handle(self, *args: object, landmark: list[str], **options: object) -> None:
        ids = None
        if landmark:
            found = dict(Landmark.objects.filter(name__in=landmark).values_list("name", "pk"))
            unknown = sorted(set(landmark) - set(found))
            if unknown:
                raise CommandError(f"no landmark named {', '.join(map(repr, unknown))}")
            ids = list(found.values())
        queued = queue_collection_analysis(ids)
        self.stdout.write(
            f"queued the analysis of {queued['images']} images in {queued['landmarks']} landmark(s)"
        )
