"""python manage.py import_images ROOT: register a collection and index it in the background."""

from __future__ import annotations

import time
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError, CommandParser
from tqdm import tqdm

from retrieval_core.datasets.collection import CollectionFormatError
from webapp.catalog.selectors import indexing_progress
from webapp.catalog.services import import_collection

LOCAL_FEATURES_GRACE_S = 120.0


class Command(BaseCommand):
    help = (
        "Import a landmark collection (a folder per landmark, labels.csv with image,landmark[,split], or "
        "the GLDv2 layout, or a flat folder of unlabelled photos; an empty landmark means unlabelled), then "
        "wait while the Celery workers index it."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("root", type=Path)
        parser.add_argument("--no-wait", action="store_true", help="return once the images are queued")
        parser.add_argument("--timeout", type=float, default=24 * 3600, help="seconds to wait for indexing")

    def handle(self, *args: object, root: Path, no_wait: bool, timeout: float, **options: object) -> None:
        if not root.is_dir():
            raise CommandError(f"{root} is not a folder")
        with tqdm(desc="registering", unit="img", disable=options["verbosity"] == 0) as bar:

            def progress(done: int, total: int) -> None:
                bar.total = total
                bar.update(done - bar.n)

            try:
                report = import_collection(root, progress=progress)
            except CollectionFormatError as error:
                raise CommandError(str(error)) from error
        quiet = options["verbosity"] == 0
        if not quiet:
            self.stdout.write(
                f"{report.created} new, {report.existing} already registered, "
                f"{len(report.failed)} unreadable, {len(report.skipped)} skipped; "
                f"{len(report.scheduled_image_ids)} queued for indexing"
            )
        for relpath, reason in report.failed[:20]:
            self.stderr.write(f"  unreadable {relpath}: {reason}")
        for reason in report.skipped[:20]:
            self.stderr.write(f"  skipped: {reason}")
        if no_wait or not report.scheduled_image_ids:
            return
        self._wait(report.scheduled_image_ids, timeout, quiet)

    def _wait(self, image_ids: list[int], timeout: float, quiet: bool) -> None:
        deadline = time.monotonic() + timeout
        with tqdm(total=len(image_ids), desc="indexing", unit="img", disable=quiet) as bar:
            while True:
                progress = indexing_progress(image_ids)
                bar.update(progress.done - bar.n)
                if progress.pending == 0:
                    break
                if time.monotonic() > deadline:
                    raise CommandError(
                        f"{progress.pending} images still waiting after {timeout:.0f}s: is a worker running "
                        "(make run starts one)?"
                    )
                time.sleep(1.0)
        # Re-ranking features come from a cpu task of their own; give it a moment to catch up.
        grace = time.monotonic() + min(timeout, LOCAL_FEATURES_GRACE_S)
        while progress.local_features < progress.indexed and time.monotonic() < grace:
            time.sleep(0.5)
            progress = indexing_progress(image_ids)
        if not quiet:
            self.stdout.write(
                f"indexed {progress.indexed}, failed {progress.failed}; "
                f"local features for {progress.local_features}"
            )
