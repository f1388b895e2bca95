"""python manage.py evaluate ROOT: the E1-E7 ladder on a labelled collection, printed and stored."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError, CommandParser
from tqdm import tqdm

from retrieval_core.eval.options import LadderOptions
from webapp.evaluation import services


class Command(BaseCommand):
    help = (
        "Evaluate retrieval on a labelled collection (folder per landmark, labels.csv, ground_truth.json or "
        "GLDv2): E1 pretrained, one row per --model checkpoint, E5 +SIFT, E6 +VLAD, E7 +CNN patches, and the "
        "best fusion (tuned on validation queries). Prints a Markdown table (or JSON), writes report.md, "
        "report.json and plots to --out, and stores the run for the web UI."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("root", type=Path)
        parser.add_argument("--out", type=Path, help="also copy the report and plots to this folder")
        parser.add_argument("--format", choices=["markdown", "json"], default="markdown")
        parser.add_argument("--queue", action="store_true", help="run on the gpu workers instead of here")
        LadderOptions.add_arguments(parser)

    def handle(
        self, *args: object, root: Path, out: Path | None, format: str, queue: bool, **options: object
    ) -> None:
        ladder = LadderOptions.from_arguments(options)
        try:
            run = (services.start_evaluation if queue else services.create_run)(root, ladder)
        except ValueError as error:
            raise CommandError(str(error)) from error
        if queue:
            self.stdout.write(f"queued evaluation run {run.pk}: see /evaluations/{run.pk}/")
            return
        with tqdm(unit="step", disable=options["verbosity"] == 0) as bar:

            def progress(stage: str, done: int, total: int) -> None:
                bar.set_description(stage[:40])
                bar.total = total
                bar.n = done
                bar.refresh()

            try:
                run = services.execute_run(run.pk, progress_hook=progress)
            except (ValueError, FileNotFoundError) as error:
                raise CommandError(str(error)) from error
        if out is not None:
            shutil.copytree(services.output_dir(run), out, dirs_exist_ok=True)
        self.stdout.write(json.dumps(run.report, indent=2) if format == "json" else run.markdown)
