"""Training throughput: the full training step vs the bare network step, in one run, and their ratio.

Full step = `retrieval_core.training.train` (decode → augment → stack → forward → loss → backward → AdamW),
timed from its own step events. Bare step = the same network, loss and optimiser on pre-made normalised
tensors of the batch shape. ratio = full / bare: the share of the network's speed that survives data
loading (1.0 = loading fully hidden behind compute).

    .venv/bin/python bench/train_throughput.py --images ../shared/datasets/wonders7 --steps 8
    .venv/bin/python bench/train_throughput.py --images 64 --image-size 224 --batch-size 4x4
"""

from __future__ import annotations

import argparse
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


def time_full(config: TrainConfig, items: list[CollectionItem], out_dir: Path) -> float:
    events: list[TrainEvent] = []
    train(config, items, None, out_dir, progress=events.append)
    timed = [e for e in events if e.kind == "step"][WARMUP_STEPS:]
    seconds = sum(config.batch_size / e.images_per_s for e in timed if e.images_per_s)
    return len(timed) * config.batch_size / seconds


def time_bare(config: TrainConfig, steps: int) -> float:
    net = build_embedding_net(EmbeddingConfig(config.backbone, image_size=config.image_size)).train()
    net.backbone.reset_classifier(0)
    for module in net.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            module.eval().requires_grad_(False)
    optimizer = torch.optim.AdamW([p for p in net.parameters() if p.requires_grad], lr=config.lr)
    size = config.image_size
    x = torch.randn(config.batch_size, 3, size, size)
    labels = torch.arange(config.p).repeat_interleave(config.k)
    start = 0.0
    for step in range(WARMUP_STEPS + steps):
        if step == WARMUP_STEPS:
            start = time.perf_counter()
        embeddings = F.normalize(net.pool(net.forward_features(x)), dim=-1)
        loss = contrastive_loss(embeddings, labels, config.margin, config.hard_negative_weight)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    return steps * config.batch_size / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--images", default="64", help="collection folder, or a count of synthetic images")
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--batch-size", default="4x4", help="PxK, e.g. 4x4 (or a total, K=4)")
    parser.add_argument("--steps", type=int, default=8, help="timed steps (after 2 warm-up steps)")
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
            f"{args.steps} timed steps, {args.threads} torch threads, {config.workers} data threads"
        )
        full = time_full(config, items, Path(tmp) / "run")
    bare = time_bare(config, args.steps)
    print(f"full training step (load+augment+fwd+loss+bwd+AdamW): {full:7.2f} img/s")
    print(f"bare step on pre-made tensors (fwd+loss+bwd+AdamW):   {bare:7.2f} img/s")
    print(f"ratio full / bare: {full / bare:.2f}")


if __name__ == "__main__":
    main()
