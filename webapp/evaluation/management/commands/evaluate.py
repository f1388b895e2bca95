"""python manage.py evaluate ROOT: the E1-E7 ladder on a labelled collection, printed and stored."""

from __future__ import annotations

import json
from pathlib import Path, PurePosixPath
from typing import cast

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser
from tqdm import tqdm

from retrieval_core.eval.options import LadderOptions
from retrieval_core.index.vector_index import CollectionMissingError
from retrieval_core.rerank.scorer import RERANK_METHODS, RerankMethod
from webapp.evaluation import services
from webapp.evaluation.served import evaluate_served
from webapp.media import read_media
from webapp.reranking.scoring import RerankUnavailable


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
        parser.add_argument(
            "--served",
            action="store_true",
            help="evaluate the live, already-imported collection through the served search (as POST "
            "/api/search/ runs it) instead of the ladder",
        )
        parser.add_argument(
            "--rerank",
            default=None,
            help="with --served: comma-separated methods, one row each (default: RERANK_METHOD)",
        )
        LadderOptions.add_arguments(parser)

    def handle(
        self,
        *args: object,
        root: Path,
        out: Path | None,
        format: str,
        queue: bool,
        served: bool,
        rerank: str | None,
        **options: object,
    ) -> None:
        ladder = LadderOptions.from_arguments(options)
        if served:
            self._served(root, out, format, rerank, ladder, verbose=options["verbosity"] != 0)
            return
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
            out.mkdir(parents=True, exist_ok=True)
            for name in services.report_files(run):
                (out / PurePosixPath(name).name).write_bytes(read_media(name))
        self.stdout.write(json.dumps(run.report, indent=2) if format == "json" else run.markdown)

    def _served(
        self,
        root: Path,
        out: Path | None,
        format: str,
        rerank: str | None,
        ladder: LadderOptions,
        *,
        verbose: bool,
    ) -> None:
        methods = [m.strip() for m in (rerank or "").split(",") if m.strip()] or [settings.RERANK_METHOD]
        unknown = set(methods) - set(RERANK_METHODS)
        if unknown:
            raise CommandError(
                f"unknown --rerank {', '.join(sorted(unknown))}; use {', '.join(RERANK_METHODS)}"
            )
        protocol = ladder.protocol()
        with tqdm(unit="query", disable=not verbose) as bar:

            def progress(stage: str, done: int, total: int) -> None:
                bar.set_description(stage)
                bar.total, bar.n = total, done
                bar.refresh()

            try:
                report = evaluate_served(
                    root, cast(list[RerankMethod], methods), protocol=protocol, progress=progress
                )
            except (ValueError, RerankUnavailable, CollectionMissingError) as error:
                raise CommandError(str(error)) from error
        if out is not None:
            out.mkdir(parents=True, exist_ok=True)
            (out / "served.json").write_text(json.dumps(report, indent=2))
        if format == "json":
            self.stdout.write(json.dumps(report, indent=2))
            return
        self.stdout.write(
            f"{report['protocol']}\n\n| method | mAP@100 | queries | p50 ms | p95 ms |\n|---|---|---|---|---|"
        )
        rows = report["rows"]
        assert isinstance(rows, list), "evaluate_served reports a list of rows"
        for row in rows:
            self.stdout.write(
                f"| served {row['method']} | {100 * row['map@100']:.2f} | {row['queries']} | "
                f"{row['p50_ms']:.0f} | {row['p95_ms']:.0f} |"
            )
        located = [row for row in rows if row.get("geolocation")]
        if located:
            self.stdout.write(
                "\nGeolocation (the served location vs the first result's position, 1-NN):\n\n"
                "| method | answer | queries | ≤ 25 m | ≤ 100 m | ≤ 1 km | median error |\n"
                "|---|---|---|---|---|---|---|"
            )
        for row in located:
            for name, scores in row["geolocation"].items():
                within = " | ".join(f"{100 * share:.1f}" for share in scores["within"].values())
                self.stdout.write(
                    f"| served {row['method']} | {name} | {scores['queries']} | {within} | "
                    f"{scores['median_error_m']:.0f} m |"
                )
