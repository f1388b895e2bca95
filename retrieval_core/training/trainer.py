"""The training loop: PxK batches → embedding net → loss → AdamW with warmup + cosine, resumable exactly.

After every epoch the validation mAP@k (`retrieval_core.training.validation`) decides the best epoch (the
starting weights count as epoch 0, so a run never ships a model worse than it started from), kept as
``best.pt``; ``last.pt`` holds everything a run needs to continue bit for bit
(`retrieval_core.training.checkpoint`). Every random draw is a function of the seed and the sample's
position in the run (not of thread timing), so a resumed run repeats an uninterrupted one exactly on the CPU.
"""

from __future__ import annotations

import math
import os
import time
from collections import deque
from collections.abc import Callable, Generator, Iterable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from retrieval_core.datasets.collection import CollectionItem
from retrieval_core.models.embedding import IMAGENET, EmbeddingConfig, EmbeddingNet, build_embedding_net
from retrieval_core.models.weights import imagenet_state_dict
from retrieval_core.training.augment import TrainTransform
from retrieval_core.training.checkpoint import (
    BEST,
    LAST,
    RunParts,
    RunProgress,
    items_digest,
    load_checkpoint,
    save_checkpoint,
)
from retrieval_core.training.config import TrainConfig
from retrieval_core.training.data import CollectionDataset
from retrieval_core.training.freezing import freeze_early_stages
from retrieval_core.training.losses import ArcFaceHead, LinearClassifierHead, contrastive_loss
from retrieval_core.training.sampler import PKSampler
from retrieval_core.training.validation import ValidationSet, Validator

__all__ = ["TrainEvent", "TrainResult", "autocast_dtype", "train"]

@dataclass(frozen=True)
class TrainEvent:
    """Progress report.

    ``kind="step"`` after every optimiser step: ``loss`` of that batch, ``images_per_s`` over the step
    including the wait for data. ``kind="epoch"`` after each epoch's validation: ``loss`` is the epoch's
    mean, ``validation_map`` its mAP@k (None without validation), ``is_best`` whether it became ``best.pt``.
    ``epoch`` is 1-based; ``step`` counts optimiser steps since the run began.
    """

    kind: Literal["step", "epoch"]
    epoch: int
    step: int
    total_steps: int
    loss: float
    lr: float
    images_per_s: float | None = None
    validation_map: float | None = None
    is_best: bool = False


@dataclass(frozen=True)
class TrainResult:
    """What a run produced.

    Attributes:
        best_checkpoint: ``best.pt`` (None if stopped before any epoch ended and without validation).
        last_checkpoint: ``last.pt``, resumable.
        best_epoch: 0 when no epoch beat the starting weights on validation.
        best_map, initial_map: validation mAP@k of the best epoch and of the starting weights.
        history: one ``{"epoch", "step", "loss", "validation_map"}`` per finished epoch.
        stopped: ``should_stop`` ended the run early; ``resume=last_checkpoint`` continues it.
    """

    best_checkpoint: Path | None
    last_checkpoint: Path
    best_epoch: int | None
    best_map: float | None
    initial_map: float | None
    history: tuple[dict[str, Any], ...]
    steps: int
    stopped: bool


def train(
    config: TrainConfig,
    train_items: Sequence[CollectionItem],
    validation: ValidationSet | None,
    out_dir: str | os.PathLike[str],
    progress: Callable[[TrainEvent], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    *,
    resume: str | os.PathLike[str] | None = None,
) -> TrainResult:
    """Train an embedding by ``config`` on ``train_items``, selecting epochs on ``validation``.

    Args:
        config: the run's settings.
        train_items: labelled items, in a fixed order (a resumed run must get the same sequence).
        validation: queries and index for checkpoint selection; None keeps the latest epoch as best.
        out_dir: receives ``best.pt`` and ``last.pt``.
        progress: called with a `TrainEvent` after each step and each epoch.
        should_stop: polled before every step; True saves a resumable ``last.pt`` and returns.
        resume: a ``last.pt`` of a run with the same config (``device``/``workers`` may differ) and items.

    Validation images that cannot be decoded are left out of validation; an undecodable training image
    raises `ImageLoadError` naming it.
    """
    return _Run(config, train_items, validation, Path(out_dir)).run(progress, should_stop, resume)


def autocast_dtype(device: torch.device) -> torch.dtype:
    """Mixed-precision dtype of a run on ``device``: bf16 (no loss scaling needed), fp16 with loss scaling
    on CUDA cards without bf16 (pre-Ampere)."""
    if device.type == "cuda" and not torch.cuda.is_bf16_supported():
        return torch.float16
    return torch.bfloat16


class _Run:
    def __init__(
        self,
        config: TrainConfig,
        train_items: Sequence[CollectionItem],
        validation: ValidationSet | None,
        out_dir: Path,
    ) -> None:
        self.config = config
        self.out_dir = out_dir
        self.device = torch.device(config.device or ("cuda" if torch.cuda.is_available() else "cpu"))
        cuda = self.device.type == "cuda"
        self.amp = cuda if config.amp is None else config.amp
        self.channels_last = cuda if config.channels_last is None else config.channels_last
        self.amp_dtype = autocast_dtype(self.device)
        self.workers = config.workers or min(8, os.cpu_count() or 1)

        self.dataset = CollectionDataset(
            train_items,
            TrainTransform(config.image_size),
            seed=config.seed,
            decode_long_side=2 * config.image_size,
        )
        self.sampler = PKSampler(self.dataset.labels, config.p, config.k, config.seed, config.steps_per_epoch)
        self.total_steps = config.epochs * len(self.sampler)

        torch.manual_seed(config.seed)  # head initialisation
        self.net = _initial_net(config).to(self.device)
        if self.channels_last:
            self.net = self.net.to(memory_format=torch.channels_last)
        if config.freeze_batchnorm:
            for module in _batchnorms(self.net):
                module.requires_grad_(False)
        freeze_early_stages(self.net.backbone, config.frozen_stages)
        self.head = _head(config, self.net.dim, len(self.dataset.classes))
        if self.head is not None:
            self.head = self.head.to(self.device)
        self.optimizer = torch.optim.AdamW(self._param_groups(), lr=config.lr)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, _warmup_cosine(round(config.warmup_fraction * self.total_steps), self.total_steps)
        )
        use_scaler = self.amp and self.amp_dtype == torch.float16
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=use_scaler)
        self.mean = torch.tensor(self.net.mean, device=self.device).view(1, -1, 1, 1)
        self.std = torch.tensor(self.net.std, device=self.device).view(1, -1, 1, 1)
        embedding = _embedding_config(config)
        self.validator = Validator(validation, embedding) if validation is not None else None
        self.parts = RunParts(
            config=config,
            net=self.net,
            head=self.head,
            optimizer=self.optimizer,
            scheduler=self.scheduler,
            scaler=self.scaler,
            sampler=self.sampler,
            classes=tuple(self.dataset.classes),
            train_digest=items_digest(train_items),
        )
        self.state = RunProgress()

    # -- the loop ------------------------------------------------------------------------------------

    def run(
        self,
        progress: Callable[[TrainEvent], None] | None,
        should_stop: Callable[[], bool] | None,
        resume: str | os.PathLike[str] | None,
    ) -> TrainResult:
        self.out_dir.mkdir(parents=True, exist_ok=True)
        if resume is not None:
            self._load(Path(resume))
        else:
            self._start()
        emit = progress or (lambda event: None)
        bs = self.config.batch_size
        with ThreadPoolExecutor(self.workers, thread_name_prefix="train-data") as pool:
            while self.state.epoch < self.config.epochs:
                epoch = self.state.epoch
                self.sampler.load_state_dict({"epoch": epoch, "position": self.state.position})
                batches = self.sampler.epoch_batches(epoch)[self.state.position :]
                first_slot = (epoch * len(self.sampler) + self.state.position) * bs
                keys = [
                    [(index, first_slot + b * bs + slot) for slot, index in enumerate(batch)]
                    for b, batch in enumerate(batches)
                ]
                self._set_train_mode()
                loader = _prefetch(self.dataset, keys, pool, pin=self.device.type == "cuda")
                tick = time.perf_counter()
                try:
                    for images, labels in loader:
                        if should_stop is not None and should_stop():
                            self._save(LAST, full=True)
                            return self._result(stopped=True)
                        lr = float(self.optimizer.param_groups[0]["lr"])
                        loss = self._step(images, labels)
                        self.state.position += 1
                        self.state.step += 1
                        self.state.epoch_losses.append(loss)
                        now = time.perf_counter()
                        emit(self._event("step", loss, lr, images_per_s=bs / max(now - tick, 1e-9)))
                        tick = now
                finally:
                    loader.close()
                self._end_epoch(emit)
        return self._result(stopped=False)

    def _step(self, images: torch.Tensor, labels: torch.Tensor) -> float:
        x = images.to(self.device, non_blocking=True)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        x = (x.float() / 255.0 - self.mean) / self.std
        labels = labels.to(self.device, non_blocking=True)
        with torch.autocast(self.device.type, dtype=self.amp_dtype, enabled=self.amp):
            features = self.net.forward_features(x)
        pooled = self.net.pool(features.float())  # x**p overflows fp16: pool in fp32
        embeddings = F.normalize(pooled, dim=-1)
        loss = self._loss(pooled, embeddings, labels)
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()  # type: ignore[no-untyped-call]
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.scheduler.step()
        return float(loss.detach())

    def _loss(self, pooled: torch.Tensor, embeddings: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        config = self.config
        if config.recipe == "e2":
            assert self.head is not None
            inputs = embeddings if isinstance(self.head, ArcFaceHead) else pooled
            return F.cross_entropy(self.head(inputs, labels), labels)
        loss = contrastive_loss(embeddings, labels, config.margin, config.hard_negative_weight)
        if self.head is not None:  # e3/e4 with ArcFace
            loss = 0.5 * loss + 0.5 * F.cross_entropy(self.head(embeddings, labels), labels)
        return loss

    def _start(self) -> None:
        if self.validator is not None:
            self.state.initial_map = self.validator.score(self.net, self.device)
            self.state.best_map, self.state.best_epoch = self.state.initial_map, 0
            self._save(BEST, full=False)

    def _end_epoch(self, emit: Callable[[TrainEvent], None]) -> None:
        state = self.state
        state.epoch += 1
        state.position = 0
        mean_loss = float(np.mean(state.epoch_losses)) if state.epoch_losses else float("nan")
        state.epoch_losses = []
        score = None
        if self.validator is not None:
            score = self.validator.score(self.net, self.device)
        is_best = score is None or state.best_map is None or score > state.best_map
        if is_best:
            state.best_map, state.best_epoch = score, state.epoch
        state.history.append(
            {"epoch": state.epoch, "step": state.step, "loss": mean_loss, "validation_map": score}
        )
        if is_best:
            self._save(BEST, full=False)
        self._save(LAST, full=True)
        lr = float(self.optimizer.param_groups[0]["lr"])
        emit(self._event("epoch", mean_loss, lr, validation_map=score, is_best=is_best))

    def _event(self, kind: Literal["step", "epoch"], loss: float, lr: float, **extra: Any) -> TrainEvent:
        epoch = self.state.epoch if kind == "epoch" else self.state.epoch + 1
        return TrainEvent(kind, epoch, self.state.step, self.total_steps, loss, lr, **extra)

    def _result(self, stopped: bool) -> TrainResult:
        best = self.out_dir / BEST
        s = self.state
        return TrainResult(
            best_checkpoint=best if best.is_file() else None,
            last_checkpoint=self.out_dir / LAST,
            best_epoch=s.best_epoch,
            best_map=s.best_map,
            initial_map=s.initial_map,
            history=tuple(dict(h) for h in s.history),
            steps=s.step,
            stopped=stopped,
        )

    # -- model parts ---------------------------------------------------------------------------------

    def _param_groups(self) -> list[dict[str, Any]]:
        """Decay matrices and kernels only; fresh heads at ``head_lr_scale`` times the learning rate."""
        config = self.config
        decay: list[nn.Parameter] = []
        no_decay: list[nn.Parameter] = []
        for parameter in self.net.parameters():
            if parameter.requires_grad:
                (decay if parameter.ndim > 1 else no_decay).append(parameter)
        fresh = [] if self.head is None else list(self.head.parameters())
        groups = [
            {"params": decay, "weight_decay": config.weight_decay},
            {"params": no_decay, "weight_decay": 0.0},
            {"params": fresh, "weight_decay": config.weight_decay, "lr": config.lr * config.head_lr_scale},
        ]
        return [group for group in groups if group["params"]]

    def _set_train_mode(self) -> None:
        self.net.train()
        if self.config.freeze_batchnorm:
            for module in _batchnorms(self.net):
                module.eval()
        if self.head is not None:
            self.head.train()

    # -- checkpoints ---------------------------------------------------------------------------------

    def _save(self, name: str, *, full: bool) -> None:
        save_checkpoint(self.out_dir / name, self.parts, self.state, full=full)

    def _load(self, path: Path) -> None:
        self.state = load_checkpoint(path, self.parts)


def _prefetch(
    dataset: CollectionDataset,
    key_batches: Iterable[list[tuple[int, int]]],
    pool: ThreadPoolExecutor,
    depth: int = 2,
    pin: bool = False,
) -> Generator[tuple[torch.Tensor, torch.Tensor], None, None]:
    """Batches ``(B, 3, S, S) uint8, (B,) int64``, decoded ``depth`` batches ahead in ``pool``."""
    pending: deque[list[Future[tuple[torch.Tensor, int]]]] = deque()
    todo = iter(key_batches)

    def submit() -> None:
        keys = next(todo, None)
        if keys is not None:
            pending.append([pool.submit(dataset.__getitem__, key) for key in keys])

    for _ in range(depth):
        submit()
    try:
        while pending:
            futures = pending.popleft()
            submit()
            samples = [future.result() for future in futures]
            images = torch.stack([image for image, _ in samples])
            labels = torch.tensor([label for _, label in samples], dtype=torch.int64)
            yield (images.pin_memory(), labels.pin_memory()) if pin else (images, labels)
    finally:
        for futures in pending:
            for future in futures:
                future.cancel()


def _initial_net(config: TrainConfig) -> EmbeddingNet:
    """`EmbeddingNet` without classifier, from ImageNet or from a checkpoint (e.g. E2's for E4)."""
    if config.init_weights == IMAGENET:
        net = EmbeddingNet(config.backbone, gem_p=config.gem_p, num_classes=0)
        net.backbone.load_state_dict(imagenet_state_dict(config.backbone, net.backbone.state_dict()))
        return net
    net = build_embedding_net(_embedding_config(config, weights=config.init_weights))
    net.backbone.reset_classifier(0)
    return net


def _embedding_config(config: TrainConfig, weights: str = IMAGENET) -> EmbeddingConfig:
    return EmbeddingConfig(config.backbone, weights, config.image_size, config.gem_p)


def _head(config: TrainConfig, dim: int, num_classes: int) -> nn.Module | None:
    if config.recipe == "e2" or config.arcface:
        if num_classes < 2:
            raise ValueError(f"a classification head needs at least 2 landmarks, got {num_classes}")
        return ArcFaceHead(dim, num_classes) if config.arcface else LinearClassifierHead(dim, num_classes)
    return None


def _batchnorms(module: nn.Module) -> list[nn.Module]:
    return [m for m in module.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]


def _warmup_cosine(warmup: int, total: int) -> Callable[[int], float]:
    """Learning-rate factor: linear warmup over ``warmup`` steps, then cosine from 1 to 0 at ``total``."""

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = (step - warmup) / max(1, total - warmup)
        return 0.5 * (1.0 + math.cos(math.pi * min(progress, 1.0)))

    return factor
