"""python manage.py build_local_features: (re)build SIFT features, the VLAD codebook and VLAD vectors."""

from __future__ import annotations

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser
from tqdm import tqdm

from webapp.catalog.models import Image
from webapp.reranking import local_features as services


class Command(BaseCommand):
    help = (
        "Extract SIFT for every image of the collection (skipping stored ones unless --force), then with "
        "--vlad K learn a K-word VLAD codebook on them and store every image's VLAD vector in Milvus."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--force", action="store_true", help="re-extract features that are stored")
        parser.add_argument(
            "--vlad",
            type=int,
            nargs="?",
            const=settings.VLAD_CLUSTERS,
            metavar="K",
            help="learn a codebook of K visual words (default VLAD_CLUSTERS)",
        )
        parser.add_argument(
            "--vlad-whiten",
            type=int,
            metavar="DIM",
            help="also learn a PCA-whitening of the VLADs to DIM dims",
        )
        parser.add_argument("--queue", action="store_true", help="dispatch to the Celery cpu workers")
        parser.add_argument("--batch", type=int, default=64)

    def handle(
        self,
        *args: object,
        force: bool,
        vlad: int | None,
        vlad_whiten: int | None,
        queue: bool,
        batch: int,
        **options: object,
    ) -> None:
        quiet = options["verbosity"] == 0
        ids = list(
            Image.objects.exclude(status=Image.Status.FAILED).order_by("pk").values_list("pk", flat=True)
        )
        if not ids:
            raise CommandError("the collection is empty: import images first")
        if queue:
            services.schedule_local_features(ids)
            self.stdout.write(f"queued local features for {len(ids)} images")
            return
        self._extract(ids, force=force, batch=batch, quiet=quiet, desc="SIFT")
        if vlad:
            if vlad < 2:
                raise CommandError("--vlad needs at least 2 visual words")
            codebook = services.build_codebook(vlad, whitening_dim=vlad_whiten)
            if not quiet:
                self.stdout.write(f"codebook {codebook.key} from {codebook.descriptor_count} descriptors")
            self._extract(ids, force=False, batch=batch, quiet=quiet, desc="VLAD")

    def _extract(self, ids: list[int], *, force: bool, batch: int, quiet: bool, desc: str) -> None:
        totals: dict[str, int] = {}
        with tqdm(total=len(ids), desc=desc, unit="img", disable=quiet) as bar:
            for start in range(0, len(ids), batch):
                counts = services.extract_local_features(ids[start : start + batch], force=force)
                for key, value in counts.items():
                    totals[key] = totals.get(key, 0) + value
                bar.update(len(ids[start : start + batch]))
        if not quiet:
            self.stdout.write(", ".join(f"{value} {key}" for key, value in totals.items()))
