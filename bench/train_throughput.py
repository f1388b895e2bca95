"""Training throughput: the full training step vs the bare network step, in one run, and their ratio.

Full step = `retrieval_core.training.train` (decode → augment → stack → forward → loss → backward → AdamW),
timed from its own step events. Bare step = the same network, loss and optimiser on pre-made normalised
tensors of the batch shape. The two alternate for ``--rounds`` rounds and each reports its median step, so
load from other processes on a shared machine hits both alike. ratio = full / bare: the share of the
network's speed that survives data loading (1.0 = loading fully hidden behind compute).

    .venv/bin/python bench/train_throughput.py --images ../shared/datasets/wonders7 --steps 8
    .venv/bin/python bench/train_throughput.py --images 64 --image-size 224 --batch-size 4x4
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from retrieval_core.datasets.collection import CollectionItem, read_collection
from retrieval_core.datasets.synthetic import write_collection
from retrieval_core.models.embedding import EmbeddingConfig, build_embedding_net
from retrieval_core.training import TrainConfig, TrainEvent, contrastive_loss, train

WARMUP_STEPS = 2


def parse_pk(text: str) -> tuple[int, int]:
    """``"4x4"`` → (4, 4); a plain number N → (N // 4, 4)."""
    if "x" in text.lower():
        p, k = (int(v) for v in text.lower().split("x"))
        return p, k
    return max(1, int(text) // 4), 4


def collection(images: str, folder: Path, p: int) -> list[CollectionItem]:
    """Items of the folder ``images``, or ``int(images)`` synthetic 480x640 views (8 per landmark)."""
    if not images.isdigit():
        return read_collection(Path(images))
    views = 8
    n_landmarks = max(p, -(-int(images) // views))
    write_collection(folder, n_landmarks, views, seed=0, image_size=(480, 640))
    return read_collection(folder)


def time_full(config: TrainConfig, items: list[CollectionItem], out_dir: Path) -> list[float]:
    """images/s of each training step after the warm-up ones."""
    events: list[TrainEvent] = []
    train(config, items, None, out_dir, progress=events.append)
    return [e.images_per_s or 0.0 for e in events if e.kind == "step"][WARMUP_STEPS:]


class BareStep:
    """The training step's network, loss and optimiser on one pre-made normalised batch."""

    def __init__(self, config: TrainConfig) -> None:
        net = build_embedding_net(EmbeddingConfig(config.backbone, image_size=config.image_size)).train()
        net.backbone.reset_classifier(0)
        for module in net.modules():
            if isinstance(module, nn.modules.batchnorm._BatchNorm):
                module.eval().requires_grad_(False)
        self.net, self.config = net, config
        self.optimizer = torch.optim.AdamW([p for p in net.parameters() if p.requires_grad], lr=config.lr)
        self.x = torch.randn(config.batch_size, 3, config.image_size, config.image_size)
        self.labels = torch.arange(config.p).repeat_interleave(config.k)

    def time(self, steps: int) -> list[float]:
        """images/s of each of ``steps`` steps after the warm-up ones."""
        rates = []
        for _ in range(WARMUP_STEPS + steps):
            start = time.perf_counter()
            embeddings = F.normalize(self.net.pool(self.net.forward_features(self.x)), dim=-1)
            c = self.config
            loss = contrastive_loss(embeddings, self.labels, c.margin, c.hard_negative_weight)
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()  # type: ignore[no-untyped-call]  # torch leaves Tensor.backward unannotated
            self.optimizer.step()
            rates.append(self.x.shape[0] / (time.perf_counter() - start))
        return rates[WARMUP_STEPS:]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--images", default="64", help="collection folder, or a count of synthetic images")
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--batch-size", default="4x4", help="PxK, e.g. 4x4 (or a total, K=4)")
    parser.add_argument("--steps", type=int, default=4, help="timed steps per round (after 2 warm-up steps)")
    parser.add_argument("--rounds", type=int, default=3, help="alternations of full and bare timing")
    parser.add_argument("--threads", type=int, default=2, help="torch threads")
    parser.add_argument("--workers", type=int, default=None, help="data threads (default: --threads)")
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    p, k = parse_pk(args.batch_size)
    with tempfile.TemporaryDirectory() as tmp:
        items = collection(args.images, Path(tmp) / "images", p)
        config = TrainConfig(
            epochs=1,
            steps_per_epoch=WARMUP_STEPS + args.steps,
            p=p,
            k=k,
            image_size=args.image_size,
            workers=args.workers or args.threads,
            device="cpu",
        )
        print(
            f"{len(items)} images, {config.image_size} px crops, batch {p}x{k}={config.batch_size}, "
            f"{args.rounds} rounds x {args.steps} timed steps, {args.threads} torch threads, "
            f"{config.workers} data threads"
        )
        bare_step = BareStep(config)
        full_rates, bare_rates = [], []
        for round_ in range(args.rounds):
            full_rates += time_full(config, items, Path(tmp) / f"run{round_}")
            bare_rates += bare_step.time(args.steps)
    full, bare = statistics.median(full_rates), statistics.median(bare_rates)
    print(f"full training step (load+augment+fwd+loss+bwd+AdamW): {full:7.2f} img/s")
    print(f"bare step on pre-made tensors (fwd+loss+bwd+AdamW):   {bare:7.2f} img/s")
    print(f"ratio full / bare: {full / bare:.2f}")


if __name__ == "__main__":
    main()
