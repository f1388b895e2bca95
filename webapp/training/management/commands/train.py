"""python manage.py train [ROOT] --recipe e2|e3|e4: fine-tune the embedding with progress bars."""

from __future__ import annotations

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError, CommandParser
from tqdm import tqdm

from retrieval_core.training import TrainConfig, TrainEvent
from webapp.training import services


class Command(BaseCommand):
    help = (
        "Train an embedding: e2 = classification fine-tuning, e3 = Siamese contrastive from ImageNet, e4 = "
        "contrastive from an e2 checkpoint (--init). Data: ROOT (a collection folder; its split=query images "
        "are never used) or, without ROOT, the curated catalogue. Validation images are held out per "
        "landmark; the best checkpoint by validation mAP@100 becomes a new model version (activate it on the "
        "Models page). --queue runs it on the gpu workers."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        defaults = TrainConfig()
        parser.add_argument("root", type=Path, nargs="?")
        parser.add_argument("--recipe", choices=["e2", "e3", "e4"], default=defaults.recipe)
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
        parser.add_argument("--whitening", action="store_true", help="learn a whitening layer after GeM")
        parser.add_argument("--seed", type=int, default=defaults.seed)
        parser.add_argument("--device", help="cpu, cuda, cuda:1 (default: cuda when available)")
        parser.add_argument("--queue", action="store_true", help="run on the gpu workers instead of here")

    def handle(self, *args: object, **options: object) -> None:
        try:
            config = TrainConfig(
                recipe=options["recipe"],  # type: ignore[arg-type]
                init_weights=str(options["init"]),
                backbone=str(options["backbone"]),
                epochs=int(options["epochs"]),  # type: ignore[call-overload]
                steps_per_epoch=options["steps_per_epoch"],  # type: ignore[arg-type]
                p=int(options["p"]),  # type: ignore[call-overload]
                k=int(options["k"]),  # type: ignore[call-overload]
                lr=float(options["lr"]),  # type: ignore[arg-type]
                margin=float(options["margin"]),  # type: ignore[arg-type]
                image_size=int(options["image_size"]),  # type: ignore[call-overload]
                arcface=bool(options["arcface"]),
                whitening=bool(options["whitening"]),
                seed=int(options["seed"]),  # type: ignore[call-overload]
                device=options["device"],  # type: ignore[arg-type]
            )
            start = services.start_training if options["queue"] else services.create_run
            run = start(config, root=options["root"])  # type: ignore[arg-type]
        except ValueError as error:
            raise CommandError(str(error)) from error
        if options["queue"]:
            self.stdout.write(f"queued training run {run.pk}: see /training/{run.pk}/")
            return
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
