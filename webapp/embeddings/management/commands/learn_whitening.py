"""python manage.py learn_whitening --dim D [--activate]: a PCA-whitening of the collection, as a version."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError, CommandParser

from webapp.embeddings.whitening import learn_whitening


class Command(BaseCommand):
    help = (
        "Fit a PCA-whitening to --dim dimensions on the active model's vectors of the collection (no labels; "
        "query-split images left out), register the whitened model as a version and, with --activate, roll "
        "it out blue/green (the workers re-index into its own collection, then search switches)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--dim", type=int, default=128, help="output dimension (default 128)")
        parser.add_argument("--activate", action="store_true", help="re-index and switch search to it")

    def handle(self, *args: object, dim: int, activate: bool, **options: object) -> None:
        try:
            version = learn_whitening(dim, activate=activate)
        except ValueError as error:
            raise CommandError(str(error)) from error
        state = "re-indexing, then active" if activate else "registered; activate it on the Models page"
        self.stdout.write(f"version {version.pk} {version.name}: {version.dim}-d, {state}")
