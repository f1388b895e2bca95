"""python manage.py tune_fusion: choose the fusion weight v on validation queries, never reported ones."""

from __future__ import annotations

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser
from tqdm import tqdm

from retrieval_core.rerank.scorer import RerankMethod
from webapp.search import tuning


class Command(BaseCommand):
    help = (
        "Search every validation image (the 'validation' split, else a seeded pick per landmark; never the "
        "'query' split) against the index, and store the fusion weight v with the best mAP@100."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--method", choices=["sift", "vlad", "patches"], default=None, help="default: RERANK_METHOD"
        )
        parser.add_argument("--seed", type=int, default=0)
        parser.add_argument("--per-landmark", type=int, default=2, help="validation queries per landmark")

    def handle(
        self, *args: object, method: RerankMethod | None, seed: int, per_landmark: int, **options: object
    ) -> None:
        method = method or settings.RERANK_METHOD
        with tqdm(desc=f"tuning {method}", unit="query", disable=options["verbosity"] == 0) as bar:

            def progress(done: int, total: int) -> None:
                bar.total = total
                bar.update(done - bar.n)

            try:
                setting = tuning.tune_fusion(method, seed=seed, per_landmark=per_landmark, progress=progress)
            except ValueError as error:
                raise CommandError(str(error)) from error
        self.stdout.write("| v (global weight) | validation mAP@100 |\n|---|---|")
        for weight, score in setting.table:
            marker = " ← chosen" if weight == setting.weight_global else ""
            self.stdout.write(f"| {weight:.2f} | {100 * score:.2f}{marker} |")
        self.stdout.write(
            f"{method}: v = {setting.weight_global:.2f}, mAP@100 {100 * setting.validation_map:.2f} "
            f"(global only {100 * setting.baseline_map:.2f}) "
            f"on {setting.validation_queries} validation queries"
        )
