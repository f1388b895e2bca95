"""python manage.py backup <folder | archive.tar.gz>: the catalogue, media, vectors and local features in
one archive (webapp/operations/backup.py; docs/operations/backup.md)."""

from __future__ import annotations

from pathlib import Path

from django.core.management.base import BaseCommand, CommandParser

from webapp.operations.backup import backup


class Command(BaseCommand):
    help = (
        "Write a backup archive: the database, the media files, every Milvus collection's vectors and the "
        "local feature store. TARGET: an archive (.tar, .tar.gz, .tgz) or a folder to put a dated one in."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("target", type=Path)

    def handle(self, *args: object, target: Path, **options: object) -> None:
        summary = backup(target, report=self.stdout.write)
        self.stdout.write(self.style.SUCCESS(f"backup written: {summary.path}"))
