"""Global image embedding: a timm CNN backbone, GeM pooling and L2 normalisation.

An `EmbeddingConfig` names everything that changes the vectors (backbone, weights, input size, GeM p), and
its `version_key` names the vector collection, so vectors from two different models never share an index.
"""

from __future__ import annotations

import functools
import hashlib
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import timm
import torch
import torch.nn.functional as F
from torch import nn

from retrieval_core.models.pooling import GeM
from retrieval_core.models.weights import WeightsError, imagenet_state_dict, load_checkpoint

__all__ = ["EmbeddingConfig", "EmbeddingNet", "build_embedding_net"]

IMAGENET = "imagenet"


@dataclass(frozen=True)
class EmbeddingConfig:
    """What determines a global descriptor.

    Attributes:
        backbone: timm model name.
        weights: ``"imagenet"`` (offline packaged weights, see `weights.py`) or a path to a user checkpoint.
        image_size: long side in pixels the image is resized to; the aspect ratio is kept.
        gem_p: initial GeM exponent (a checkpoint that contains the pooling layer overrides it).

    The descriptor is computed at this one input size: summing the vectors of extra input scales was
    measured under the noise floor on both hard sets, at 1.5-3.5x the pixels per image.
    """

    backbone: str = "tf_efficientnet_lite0"
    weights: str = IMAGENET
    image_size: int = 384
    gem_p: float = 3.0

    def __post_init__(self) -> None:
        if self.image_size < 32:
            raise ValueError(f"image_size must be at least 32, got {self.image_size}")
        if self.gem_p <= 0:
            raise ValueError(f"gem_p must be positive, got {self.gem_p}")

    @property
    def version_key(self) -> str:
        """Short stable id, e.g. ``tf_efficientnet_lite0-imagenet-384-gem3``.

        A checkpoint is named by its content (``ckpt`` + sha256 prefix), not its path, so moving the file
        keeps the key and retraining into the same path changes it.
        """
        if self.weights == IMAGENET:
            weights = IMAGENET
        else:
            path = Path(self.weights).resolve()
            if not path.is_file():
                raise WeightsError(f"Checkpoint not found: {self.weights}")
            stat = path.stat()
            weights = "ckpt" + _sha256_prefix(str(path), stat.st_size, stat.st_mtime_ns)
        p = f"{self.gem_p:g}".replace(".", "p")
        return f"{self.backbone}-{weights}-{self.image_size}-gem{p}"

    @property
    def collection_name(self) -> str:
        """`version_key` as a Milvus collection name: ``[A-Za-z_][A-Za-z0-9_]*``."""
        name = re.sub(r"[^A-Za-z0-9_]", "_", self.version_key)
        return name if re.match(r"[A-Za-z_]", name) else f"_{name}"


@functools.lru_cache(maxsize=32)
def _sha256_prefix(path: str, size: int, mtime_ns: int) -> str:
    """First 12 hex digits of the file's sha256; size and mtime are part of the cache key only."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()[:12]


class EmbeddingNet(nn.Module):
    """timm backbone → feature map → GeM → L2 normalisation.

    The backbone keeps its classifier (``num_classes`` > 0) so the same network can also classify, which is
    how the ImageNet weights are checked; embeddings never go through it.

    Attributes:
        mean, std: per-channel input normalisation the backbone was trained with, applied by the caller to
            images scaled to [0, 1] (0.5 / 0.5 for the TF-ported EfficientNet-Lite models).
    """

    def __init__(
        self, backbone: str = "tf_efficientnet_lite0", *, gem_p: float = 3.0, num_classes: int = 1000
    ) -> None:
        super().__init__()
        # timm's models carry more API than nn.Module declares (pretrained_cfg, forward_features, ...).
        network: Any = timm.create_model(backbone, pretrained=False, num_classes=num_classes)
        self.backbone: Any = network
        self.pool = GeM(p=gem_p)
        cfg: dict[str, Any] = network.pretrained_cfg
        self.mean: tuple[float, ...] = tuple(float(v) for v in cfg.get("mean", (0.5, 0.5, 0.5)))
        self.std: tuple[float, ...] = tuple(float(v) for v in cfg.get("std", (0.5, 0.5, 0.5)))

    @property
    def dim(self) -> int:
        """Embedding dimension D (the backbone's final channel count)."""
        return int(self.backbone.num_features)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, 3, H, W)`` normalised images → ``(B, D, H/32, W/32)`` feature map."""
        return self.backbone.forward_features(x)

    def embed_feature_map(self, feature_map: torch.Tensor) -> torch.Tensor:
        """``(B, D, h, w)`` feature map → ``(B, D)`` unit-norm embeddings (callers that also need the map)."""
        return F.normalize(self.pool(feature_map), dim=-1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, 3, H, W)`` normalised images → ``(B, D)`` unit-norm embeddings. Any H, W ≥ 32 work."""
        return self.embed_feature_map(self.forward_features(x))

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, 3, H, W)`` normalised images → ``(B, num_classes)`` classifier logits."""
        if self.backbone.num_classes == 0:
            raise RuntimeError("This network was built without a classifier (num_classes=0).")
        return self.backbone.forward_head(self.forward_features(x))


def _classifier_key(backbone: str) -> str:
    return f"{timm.get_pretrained_cfg_value(backbone, 'classifier') or 'classifier'}.weight"


def build_embedding_net(cfg: EmbeddingConfig) -> EmbeddingNet:
    """`EmbeddingNet` for ``cfg`` with its weights loaded, in eval mode, on the CPU.

    A checkpoint path may hold either an `EmbeddingNet` state dict (keys ``backbone.*`` and ``pool.p``,
    e.g. after fine-tuning) or a plain timm backbone state dict; with or without a classifier. Loading is
    strict: a missing or unexpected tensor is an error, never a silently half-random network.
    """
    if not timm.is_model(cfg.backbone):
        raise ValueError(f"Unknown timm backbone {cfg.backbone!r}.")
    if cfg.weights == IMAGENET:
        net = EmbeddingNet(cfg.backbone, gem_p=cfg.gem_p)
        net.backbone.load_state_dict(imagenet_state_dict(cfg.backbone, net.backbone.state_dict()))
        return net.eval()

    if not os.path.isfile(cfg.weights):
        raise WeightsError(f"weights must be {IMAGENET!r} or a checkpoint file's path; got {cfg.weights!r}.")
    state = load_checkpoint(cfg.weights)
    is_embedding_net = any(k.startswith("backbone.") for k in state)
    head_key = ("backbone." if is_embedding_net else "") + _classifier_key(cfg.backbone)
    num_classes = int(state[head_key].shape[0]) if head_key in state else 0
    net = EmbeddingNet(cfg.backbone, gem_p=cfg.gem_p, num_classes=num_classes)
    target: nn.Module = net if is_embedding_net else net.backbone
    try:
        target.load_state_dict(state, strict=True)
    except RuntimeError as e:
        kind = "EmbeddingNet" if is_embedding_net else "backbone"
        raise WeightsError(
            f"Checkpoint {cfg.weights} does not fit a {cfg.backbone} {kind}: {e}".strip()
        ) from None
    return net.eval()
