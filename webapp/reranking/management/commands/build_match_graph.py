"""python manage.py build_match_graph: verify every indexed photo against its global neighbours."""

from __future__ import annotations

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser
from tqdm import tqdm

from webapp.reranking import match_graph


class Command(BaseCommand):
    help = (
        "Build the match graph: every indexed photo not scanned yet for the current "
        "SIFT settings (all of them with --rescan) is verified against its RERANK_GRAPH_NEIGHBOURS global "
        "neighbours, and its matches are stored. Needs the photos' vectors and local features."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--rescan", action="store_true", help="verify photos already scanned again")
        parser.add_argument("--queue", action="store_true", help="dispatch to the Celery cpu workers")
        parser.add_argument("--batch", type=int, default=64)

    def handle(self, *args: object, rescan: bool, queue: bool, batch: int, **options: object) -> None:
        quiet = options["verbosity"] == 0
        ids = match_graph.unlinked_image_ids(rescan=rescan)
        if not ids:
            self.stdout.write("every indexed photo is in the match graph already (use --rescan to redo)")
            return
        if queue:
            match_graph.schedule_linking(ids, force=True)
            self.stdout.write(f"queued {len(ids)} photos for the match graph")
            return
        totals = {"linked": 0, "matches": 0, "waiting": 0}
        with tqdm(total=len(ids), desc="match graph", unit="img", disable=quiet) as bar:
            for start in range(0, len(ids), batch):
                counts = match_graph.link_images(ids[start : start + batch])
                totals["linked"] += counts["linked"]
                totals["matches"] += counts["matches"]
                totals["waiting"] += len(counts["waiting"])
                bar.update(len(ids[start : start + batch]))
        self.stdout.write(
            f"{totals['linked']} photos verified against up to {settings.RERANK_GRAPH_NEIGHBOURS} "
            f"neighbours each: {totals['matches']} matches stored"
            + (f"; {totals['waiting']} have no vector or local features yet" if totals["waiting"] else "")
        )
        if not settings.RERANK_GRAPH_VERIFICATION:
            self.stdout.write(
                "RERANK_GRAPH_VERIFICATION is 0: the search does not read the graph until it is set"
            )
        if totals["linked"] == 0 and totals["waiting"]:
            raise CommandError("no photo could be linked: run build_local_features and index them first")
