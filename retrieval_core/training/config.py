"""`TrainConfig`: everything that decides a training run, as primitives (it is stored in checkpoints)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Literal

import timm

from retrieval_core.models.embedding import IMAGENET

__all__ = ["RECIPES", "Recipe", "TrainConfig"]

Recipe = Literal["e2", "e3", "e4"]
RECIPES: tuple[Recipe, ...] = ("e2", "e3", "e4")


@dataclass(frozen=True)
class TrainConfig:
    """One training run (the thesis's E2-E4 as a parameter, not as copied notebooks).

    Attributes:
        recipe: ``"e2"`` classifier fine-tuning (cross-entropy through a linear or ArcFace head);
            ``"e3"`` contrastive training from ``init_weights`` (ImageNet); ``"e4"`` contrastive training
            from an ``e2`` checkpoint (``init_weights`` must be a path).
        backbone: timm model name.
        init_weights: ``"imagenet"`` or a checkpoint path that `build_embedding_net` accepts.
        epochs: passes of the `PKSampler`.
        steps_per_epoch: batches per epoch; None = ``len(train_items) // (p * k)``.
        p, k: landmarks per batch and images per landmark (batch size ``p * k``).
        lr: peak learning rate (AdamW), reached after ``warmup_fraction`` of the steps, then cosine to 0.
        head_lr_scale: learning-rate factor for freshly initialised heads (classifier, ArcFace),
            which start far from useful and must move faster than the pretrained backbone.
        weight_decay: AdamW decoupled decay, applied to matrices and kernels only (not to biases, norms,
            GeM p).
        margin: contrastive margin on the cosine distance ``1 - cos`` (the thesis used 0.4).
        hard_negative_weight: ``beta`` of `contrastive_loss`: 0 averages all negative pairs equally.
        image_size: side of the square training crop; validation resizes the long side to it.
        gem_p: initial GeM exponent (learnt during training).
        seed: decides the sampler, augmentation and head initialisation.
        amp: mixed precision (bf16, or fp16 with loss scaling where bf16 is missing); None = on with CUDA.
        channels_last: NHWC memory layout; None = on with CUDA.
        arcface: ``e2``: an ArcFace head instead of a linear classifier; ``e3``/``e4``: add an ArcFace
            cross-entropy to the contrastive loss, weighted 0.5 / 0.5 as the thesis mixed its two losses.
        freeze_batchnorm: keep BatchNorm statistics and affine parameters fixed: PxK batches are small and
            hold K views of each landmark, so their statistics are biased estimates of the data's.
        frozen_stages: the backbone's stem and this many early stages keep their starting weights
            (`retrieval_core.training.freezing`); 0 trains every layer.
        workers: threads decoding and augmenting images ahead of the network; None = one per core, at most
            8 (a GPU step takes a few milliseconds: two threads left a card waiting for data).
        device: ``"cpu"``, ``"cuda"``, ``"cuda:1"``…; None = CUDA when available.
    """

    recipe: Recipe = "e3"
    backbone: str = "tf_efficientnet_lite0"
    init_weights: str = IMAGENET
    epochs: int = 10
    steps_per_epoch: int | None = None
    p: int = 8
    k: int = 4
    lr: float = 1e-4
    head_lr_scale: float = 10.0
    weight_decay: float = 1e-4
    warmup_fraction: float = 0.05
    margin: float = 0.4
    hard_negative_weight: float = 10.0
    image_size: int = 224
    gem_p: float = 3.0
    seed: int = 0
    amp: bool | None = None
    channels_last: bool | None = None
    arcface: bool = False
    freeze_batchnorm: bool = True
    frozen_stages: int = 0
    workers: int | None = None
    device: str | None = None

    def __post_init__(self) -> None:
        if self.recipe not in RECIPES:
            raise ValueError(f"recipe must be one of {', '.join(RECIPES)}, got {self.recipe!r}")
        if self.recipe == "e4" and self.init_weights == IMAGENET:
            raise ValueError("recipe e4 starts from an e2 checkpoint: set init_weights to its path")
        if not timm.is_model(self.backbone):
            raise ValueError(f"unknown timm backbone {self.backbone!r}")
        positive = {"epochs": self.epochs, "p": self.p, "lr": self.lr, "image_size": self.image_size}
        for name, value in positive.items():
            if value <= 0:
                raise ValueError(f"{name} must be positive, got {value}")
        if self.k < 2:
            raise ValueError(f"k must be at least 2 so every batch holds positive pairs, got {self.k}")
        if self.steps_per_epoch is not None and self.steps_per_epoch < 1:
            raise ValueError(f"steps_per_epoch must be at least 1, got {self.steps_per_epoch}")
        if self.image_size < 32:
            raise ValueError(f"image_size must be at least 32, got {self.image_size}")
        if not 0 <= self.warmup_fraction < 1:
            raise ValueError(f"warmup_fraction must be in [0, 1), got {self.warmup_fraction}")
        if self.margin <= 0 or self.hard_negative_weight < 0 or self.weight_decay < 0:
            raise ValueError("margin must be positive; hard_negative_weight and weight_decay not negative")
        if self.frozen_stages < 0:
            raise ValueError(f"frozen_stages must not be negative, got {self.frozen_stages}")
        if self.workers is not None and self.workers < 1:
            raise ValueError(f"workers must be at least 1, got {self.workers}")

    @property
    def batch_size(self) -> int:
        return self.p * self.k

    def to_dict(self) -> dict[str, Any]:
        """Plain values only, so a checkpoint holding it loads with ``torch.load(weights_only=True)``."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TrainConfig:
        """Inverse of `to_dict`; unknown keys (from a newer version) are an error, not silently dropped."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown TrainConfig field(s): {', '.join(unknown)}")
        return cls(**values)
