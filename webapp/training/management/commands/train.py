"""python manage.py train [ROOT] --recipe e2|e3|e4|self: fine-tune the embedding with progress bars."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from tqdm import tqdm

from retrieval_core.training import TrainConfig, TrainEvent
from retrieval_core.training.pair_mining import MiningConfig
from webapp.training import services
from webapp.training.mining_stages import execute_mining
from webapp.training.models import TrainingRun


class Command(BaseCommand):
    help = (
        "Train an embedding: e2 = classification fine-tuning, e3 = Siamese contrastive from ImageNet, e4 = "
        "contrastive from an e2 checkpoint (--init). Data: ROOT (a collection folder; its split=query images "
        "are never used) or, without ROOT, the curated catalogue. Validation images are held out per "
        "landmark; the best checkpoint by validation mAP@100 becomes a new model version (activate it on the "
        "Models page). --queue runs it on the gpu workers. self = no labels needed: training pairs are mined "
        "from the collection by geometric verification (global neighbours verified by RootSIFT + MAGSAC++; "
        "connected components are pseudo-landmarks, curated labels take precedence), then contrastive "
        "training from --init / --init-version on them, validated on mined pairs. --hold-out-queries keeps "
        "ROOT's reported evaluation queries, their positives and their landmarks out of mining, so that "
        "`evaluate ROOT --model` on the result is honest."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        defaults = TrainConfig()
        parser.add_argument("root", type=Path, nargs="?")
        parser.add_argument("--recipe", choices=["e2", "e3", "e4", "self"], default=defaults.recipe)
        parser.add_argument(
            "--init", default=defaults.init_weights, help="imagenet or a checkpoint (e4: e2's)"
        )
        parser.add_argument("--backbone", default=defaults.backbone)
        parser.add_argument("--epochs", type=int, default=defaults.epochs)
        parser.add_argument("--steps-per-epoch", type=int)
        parser.add_argument("--p", type=int, default=defaults.p, help="landmarks per batch")
        parser.add_argument("--k", type=int, default=defaults.k, help="images per landmark in a batch")
        parser.add_argument("--lr", type=float, default=defaults.lr)
        parser.add_argument("--margin", type=float, default=defaults.margin)
        parser.add_argument("--image-size", type=int, default=defaults.image_size)
        parser.add_argument("--arcface", action="store_true")
        parser.add_argument(
            "--frozen-stages",
            type=int,
            default=defaults.frozen_stages,
            help="keep the backbone's stem and this many early stages at their starting weights",
        )
        parser.add_argument("--seed", type=int, default=defaults.seed)
        parser.add_argument("--device", help="cpu, cuda, cuda:1 (default: cuda when available)")
        parser.add_argument("--queue", action="store_true", help="run on the gpu workers instead of here")
        mining = MiningConfig()
        parser.add_argument("--init-version", help="self/e3: start from this model version (name or id)")
        parser.add_argument(
            "--min-inliers", type=int, default=mining.min_inliers, help="self: inliers of a positive pair"
        )
        parser.add_argument(
            "--neighbours", type=int, default=mining.neighbours, help="self: candidate pairs per image"
        )
        parser.add_argument(
            "--negative-distance",
            type=float,
            default=mining.min_negative_distance_m,
            help="self: metres between two GPS-tagged images for a hard negative",
        )
        parser.add_argument(
            "--hold-out-queries",
            action="store_true",
            help="self: never mine ROOT's reported evaluation queries, their positives or their landmarks",
        )

    def handle(self, *args: object, **options: Any) -> None:  # argparse's values, as declared above
        self_recipe = options["recipe"] == "self"
        try:
            init = str(options["init"])
            if options["init_version"]:
                init = services.version_weights(str(options["init_version"]))
            config = TrainConfig(
                recipe="e3" if self_recipe else options["recipe"],
                init_weights=init,
                backbone=str(options["backbone"]),
                epochs=int(options["epochs"]),
                steps_per_epoch=options["steps_per_epoch"],
                p=int(options["p"]),
                k=int(options["k"]),
                lr=float(options["lr"]),
                margin=float(options["margin"]),
                image_size=int(options["image_size"]),
                arcface=bool(options["arcface"]),
                frozen_stages=int(options["frozen_stages"]),
                seed=int(options["seed"]),
                device=options["device"],
            )
            if self_recipe:
                mining = MiningConfig(
                    neighbours=int(options["neighbours"]),
                    min_inliers=int(options["min_inliers"]),
                    min_negative_distance_m=float(options["negative_distance"]),
                )
                held_out = (
                    services.protocol_held_out(options["root"])
                    if options["hold_out_queries"]
                    else []
                )
                start_self = services.start_self_training if options["queue"] else services.create_self_run
                run = start_self(config, mining, root=options["root"], held_out=held_out)
            else:
                start = services.start_training if options["queue"] else services.create_run
                run = start(config, root=options["root"])
        except ValueError as error:
            raise CommandError(str(error)) from error
        if options["queue"]:
            self.stdout.write(f"queued training run {run.pk}: see /training/{run.pk}/")
            return
        if self_recipe:
            self._mine(run, quiet=options["verbosity"] == 0)
        with tqdm(unit="step", disable=options["verbosity"] == 0) as bar:

            def on_event(event: TrainEvent) -> None:
                bar.total = event.total_steps
                bar.n = event.step
                if event.kind == "epoch":
                    bar.write(
                        f"epoch {event.epoch}: loss {event.loss:.4f}, "
                        f"validation mAP@100 {event.validation_map}"
                    )
                bar.set_postfix(epoch=event.epoch, loss=f"{event.loss:.4f}")

            run = services.execute_run(run.pk, on_event=on_event)
        if run.status != run.Status.DONE:
            raise CommandError(f"training run {run.pk} {run.status}: {run.error}")
        self.stdout.write(
            f"run {run.pk}: validation mAP@100 {run.initial_map} → {run.best_map}; "
            f"model version {run.model_version} (activate it on /models/)"
        )

    def _mine(self, run: TrainingRun, *, quiet: bool) -> None:
        with tqdm(unit="", disable=quiet) as bar:

            def progress(stage: str, done: int, total: int) -> None:
                bar.set_description(stage)
                bar.total, bar.n = total, done
                bar.refresh()

            mining = execute_mining(run.mining.pk, progress)
        if mining.status != mining.Status.DONE:
            raise CommandError(f"mining for training run {run.pk} {mining.status}: {mining.error}")
        stats = mining.statistics
        self.stdout.write(
            f"mined {stats['positive_pairs']} verified pairs and {stats['negative_pairs']} hard negatives: "
            f"{stats['components']} pseudo-landmarks covering {stats['covered_images']} of {stats['images']} "
            f"images (largest {stats['component_sizes'][:5]})"
        )
