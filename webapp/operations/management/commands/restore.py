"""python manage.py restore <archive>: a backup loaded into an empty stack (webapp/operations/backup.py;
docs/operations/backup.md)."""

from __future__ import annotations

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError, CommandParser

from webapp.operations.backup import RestoreRefused, restore


class Command(BaseCommand):
    help = (
        "Restore a backup archive into an empty stack (new database, Milvus and media): migrates, loads the "
        "catalogue, the media, the local features and the vectors."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("archive", type=Path)

    def handle(self, *args: object, archive: Path, **options: object) -> None:
        try:
            manifest = restore(archive, report=self.stdout.write)
        except RestoreRefused as error:
            raise CommandError(str(error)) from error
        self.stdout.write(self.style.SUCCESS(f"restored the backup of {manifest['created_at']}"))
