"""Short CPU fine-tuning on wonders7 (7 landmarks): validation and test mAP@100 before and after.

wonders7 has too few landmarks to split by landmark (`retrieval_core.eval.splits` would leave one or two
per role), so this splits by image within landmarks, with the same seeded-hash rule the splits module uses:

- test queries: the collection's own ``split=query`` images (70), never trained on nor used to choose;
- of the ``split=train`` images, per landmark the first ``--val-queries`` + ``--val-index`` by
  ``sha256(seed, relpath)`` are held out as validation queries / validation index (checkpoint selection);
  the rest are trained on.

Test mAP@100 is reported against two indexes: the held-out images only (never seen in training), and all
``split=train`` images (the product's case: the collection it indexes is the one it was tuned on).

    .venv/bin/python bench/train_demo.py --epochs 6 --steps-per-epoch 50
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from retrieval_core.datasets.collection import read_collection
from retrieval_core.eval.splits import split_within_landmarks
from retrieval_core.models.embedding import EmbeddingConfig, build_embedding_net
from retrieval_core.training import (
    TrainConfig,
    TrainEvent,
    ValidationSet,
    checkpoint_embedding_config,
    score_validation,
    train,
)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--root", type=Path, default=Path(__file__).resolve().parents[2] / "shared/datasets/wonders7"
    )
    parser.add_argument("--out", type=Path, default=Path("/tmp/train_demo"))
    parser.add_argument("--recipe", default="e3", choices=["e2", "e3"])
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--steps-per-epoch", type=int, default=50)
    parser.add_argument("--p", type=int, default=4)
    parser.add_argument("--k", type=int, default=4)
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--lr", type=float, default=1e-4)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--val-queries", type=int, default=4)
    parser.add_argument("--val-index", type=int, default=10)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    items = read_collection(args.root)
    test_queries = [i for i in items if i.split == "query"]
    pool = [i for i in items if i.split == "train"]
    train_items, val_queries, val_index = split_within_landmarks(
        pool, args.seed, args.val_queries, args.val_index
    )
    validation = ValidationSet(val_queries, val_index)
    test_sets = {
        "test (held-out index)": ValidationSet(test_queries, val_queries + val_index),
        "test (all train-split index)": ValidationSet(test_queries, pool),
    }
    print(
        f"train {len(train_items)} images, validation {len(val_queries)} queries / {len(val_index)} index, "
        f"test {len(test_queries)} queries"
    )

    config = TrainConfig(
        recipe=args.recipe,
        epochs=args.epochs,
        steps_per_epoch=args.steps_per_epoch,
        p=args.p,
        k=args.k,
        lr=args.lr,
        image_size=args.image_size,
        seed=args.seed,
        workers=args.threads,
        device="cpu",
    )
    start = time.perf_counter()

    def report(event: TrainEvent) -> None:
        if event.kind == "epoch":
            print(
                f"epoch {event.epoch}: step {event.step}/{event.total_steps} loss {event.loss:.4f} "
                f"val mAP@100 {100 * (event.validation_map or 0):.2f}{' (best)' if event.is_best else ''} "
                f"[{time.perf_counter() - start:.0f} s]",
                flush=True,
            )
        elif event.step % 10 == 0:
            print(
                f"  step {event.step} loss {event.loss:.4f} lr {event.lr:.2e} {event.images_per_s:.1f} img/s"
            )

    result = train(config, train_items, validation, args.out, progress=report)
    print(
        f"trained {result.steps} steps in {time.perf_counter() - start:.0f} s; best epoch {result.best_epoch}"
    )

    before = EmbeddingConfig(config.backbone, image_size=config.image_size)
    assert result.best_checkpoint is not None
    after = checkpoint_embedding_config(result.best_checkpoint)
    nets = {"before": build_embedding_net(before), "after": build_embedding_net(after)}
    print(f"{'mAP@100 (%)':32s} {'before':>8s} {'after':>8s}")
    assert result.initial_map is not None and result.best_map is not None, "train() was given validation data"
    print(f"{'validation':32s} {100 * result.initial_map:8.2f} {100 * result.best_map:8.2f}")
    for name, test in test_sets.items():
        scores = [
            100 * score_validation(nets[w], test, cfg) for w, cfg in (("before", before), ("after", after))
        ]
        print(f"{name:32s} {scores[0]:8.2f} {scores[1]:8.2f}")


if __name__ == "__main__":
    main()
