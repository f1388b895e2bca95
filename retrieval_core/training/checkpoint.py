"""Training checkpoints: ``best.pt`` (weights to serve) and ``last.pt`` (everything to resume exactly).

Checkpoints hold tensors and plain values only (loadable with ``weights_only=True``); the model is under
``"state_dict"`` as an `EmbeddingNet` without classifier, so ``build_embedding_net(EmbeddingConfig(
weights=path))`` loads either file (`checkpoint_embedding_config` gives the matching config). ``last.pt``
adds the heads, optimiser, scheduler, loss scaler, sampler position and RNG state.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from retrieval_core.datasets.collection import CollectionItem
from retrieval_core.models.embedding import EmbeddingConfig, EmbeddingNet
from retrieval_core.models.weights import WeightsError
from retrieval_core.training.config import TrainConfig
from retrieval_core.training.sampler import PKSampler

__all__ = [
    "BEST",
    "CHECKPOINT_FORMAT",
    "LAST",
    "RunParts",
    "RunProgress",
    "checkpoint_embedding_config",
    "items_digest",
    "load_checkpoint",
    "save_checkpoint",
]

CHECKPOINT_FORMAT = 1
BEST, LAST = "best.pt", "last.pt"
# Settings that may differ between a run and its resumption: they change neither data nor numbers.
_RESUMABLE_CHANGES = frozenset({"device", "workers"})


@dataclass
class RunProgress:
    """Mutable position of a run; saved in checkpoints as plain values."""

    epoch: int = 0  # epochs finished
    position: int = 0  # batches trained in the current epoch
    step: int = 0
    best_map: float | None = None
    best_epoch: int | None = None
    initial_map: float | None = None
    history: list[dict[str, Any]] = field(default_factory=list)
    epoch_losses: list[float] = field(default_factory=list)  # losses of the current epoch so far


@dataclass(frozen=True)
class RunParts:
    """What a checkpoint saves and a resumed run loads back into, in place."""

    config: TrainConfig
    net: EmbeddingNet
    head: nn.Module | None
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    scaler: torch.amp.GradScaler
    sampler: PKSampler
    classes: Sequence[str]
    train_digest: str  # `items_digest` of the training items


def checkpoint_embedding_config(path: str | os.PathLike[str]) -> EmbeddingConfig:
    """`EmbeddingConfig` that serves a checkpoint written by `train` (backbone, image size, GeM p)."""
    checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    meta = checkpoint.get("embedding") if isinstance(checkpoint, dict) else None
    if not isinstance(meta, dict):
        raise WeightsError(f"{path} is not a checkpoint written by retrieval_core.training")
    return EmbeddingConfig(
        backbone=meta["backbone"], weights=str(path), image_size=meta["image_size"], gem_p=meta["gem_p"]
    )


def save_checkpoint(path: Path, parts: RunParts, progress: RunProgress, *, full: bool) -> None:
    """Write the weights and metrics (``full``: and everything `load_checkpoint` needs) atomically."""
    config, s = parts.config, progress
    checkpoint: dict[str, Any] = {
        "format": CHECKPOINT_FORMAT,
        "state_dict": {k: v.detach().cpu() for k, v in parts.net.state_dict().items()},
        "embedding": {
            "backbone": config.backbone,
            "image_size": config.image_size,
            "gem_p": config.gem_p,
        },
        "config": config.to_dict(),
        "classes": list(parts.classes),
        "epoch": s.epoch,
        "step": s.step,
        "metrics": {
            "validation_map": s.history[-1]["validation_map"] if s.history else s.initial_map,
            "best_map": s.best_map,
            "best_epoch": s.best_epoch,
            "initial_map": s.initial_map,
            "history": [dict(h) for h in s.history],
        },
    }
    if full:
        checkpoint.update(
            position=s.position,
            epoch_losses=list(s.epoch_losses),
            train_digest=parts.train_digest,
            head=_cpu_state(parts.head),
            optimizer=parts.optimizer.state_dict(),
            scheduler=parts.scheduler.state_dict(),
            scaler=parts.scaler.state_dict(),
            sampler={**parts.sampler.state_dict(), "epoch": s.epoch, "position": s.position},
            rng={
                "torch": torch.get_rng_state(),
                "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
            },
        )
    partial = path.with_suffix(".pt.partial")
    torch.save(checkpoint, partial)
    os.replace(partial, path)  # a crash mid-write never leaves a truncated checkpoint


def load_checkpoint(path: Path, parts: RunParts) -> RunProgress:
    """Restore a ``last.pt`` into ``parts`` (and the RNG) and return the run's progress.

    Refused unless it was written by a run with the same config (``device``/``workers`` may differ) and
    the same training items.
    """
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise WeightsError(f"cannot read checkpoint {path}: {e}") from None
    if not isinstance(checkpoint, dict) or "optimizer" not in checkpoint:
        raise WeightsError(f"{path} is not a resumable training checkpoint (use last.pt)")
    saved = TrainConfig.from_dict(checkpoint["config"]).to_dict()
    current = parts.config.to_dict()
    changed = [k for k in current if k not in _RESUMABLE_CHANGES and saved[k] != current[k]]
    if changed:
        detail = ", ".join(f"{k}: {saved[k]!r} -> {current[k]!r}" for k in changed)
        raise ValueError(f"cannot resume {path} with a different config ({detail})")
    if checkpoint["train_digest"] != parts.train_digest:
        raise ValueError(f"cannot resume {path}: the training items differ from the run's")
    parts.net.load_state_dict(checkpoint["state_dict"])
    if parts.head is not None:
        parts.head.load_state_dict(checkpoint["head"])
    parts.optimizer.load_state_dict(checkpoint["optimizer"])
    parts.scheduler.load_state_dict(checkpoint["scheduler"])
    if checkpoint["scaler"]:  # empty from a run without fp16 loss scaling (CPU, bf16): keep a fresh one
        parts.scaler.load_state_dict(checkpoint["scaler"])
    parts.sampler.load_state_dict(checkpoint["sampler"])
    torch.set_rng_state(checkpoint["rng"]["torch"])
    if torch.cuda.is_available() and checkpoint["rng"]["cuda"]:
        # One state per card of the machine that saved it; this one may have fewer.
        torch.cuda.set_rng_state_all(checkpoint["rng"]["cuda"][: torch.cuda.device_count()])
    metrics = checkpoint["metrics"]
    return RunProgress(
        epoch=checkpoint["epoch"],
        position=checkpoint["position"],
        step=checkpoint["step"],
        best_map=metrics["best_map"],
        best_epoch=metrics["best_epoch"],
        initial_map=metrics["initial_map"],
        history=[dict(h) for h in metrics["history"]],
        epoch_losses=list(checkpoint["epoch_losses"]),
    )


def items_digest(items: Sequence[CollectionItem]) -> str:
    """Identity of the training sequence: sampler indices mean the same images only for the same one."""
    digest = hashlib.sha256()
    for item in items:
        digest.update(f"{item.relpath}\x00{item.landmark}\x01".encode())
    return digest.hexdigest()


def _cpu_state(module: nn.Module | None) -> dict[str, torch.Tensor]:
    return {} if module is None else {k: v.detach().cpu() for k, v in module.state_dict().items()}
