"""Learned whitening after GeM: a linear layer initialised from the PCA of descriptors, then fine-tuned.

Whitening decorrelates descriptor dimensions and down-weights the directions in which all images vary
together (co-occurring "bursty" features), which consistently helps landmark retrieval (Radenović et al.,
TPAMI 2018). It acts on the L2-normalised GeM vector and re-normalises its output.

Training checkpoints keep it beside the model under ``"whitening"``; `build_embedding_net` attaches it to
the served `EmbeddingNet` (``with_whitening=True``), so search embeds exactly as validation did.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from retrieval_core.atomic import atomic_write
from retrieval_core.models.weights import WeightsError

__all__ = ["LearnedWhitening", "fit_whitening", "load_whitening", "save_whitened_model"]


class LearnedWhitening(nn.Module):
    """``(B, D)`` unit-norm descriptors → ``(B, out_dim)`` unit-norm whitened descriptors.

    Starts as the identity (``out_dim == dim``) until `init_from_pca` is called.
    """

    def __init__(self, dim: int, out_dim: int | None = None) -> None:
        super().__init__()
        out_dim = out_dim or dim
        if not 1 <= out_dim <= dim:
            raise ValueError(f"out_dim must be between 1 and {dim}, got {out_dim}")
        self.linear = nn.Linear(dim, out_dim)
        with torch.no_grad():
            self.linear.weight.copy_(torch.eye(out_dim, dim))
            self.linear.bias.zero_()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.linear(x), dim=-1)

    @torch.no_grad()
    def init_from_pca(self, descriptors: torch.Tensor, shrinkage: float = 0.1) -> None:
        """Set ``W = (Λ + shrinkage·mean(Λ))^(-1/2) Eᵀ`` and ``b = -W μ`` from ``(N, D)`` descriptors.

        With fewer images than dimensions the covariance is singular; ``shrinkage`` bounds how much the
        near-empty directions (noise) are amplified.
        """
        x = descriptors.detach().double().cpu()
        if x.ndim != 2 or x.shape[1] != self.linear.in_features or x.shape[0] < 2:
            raise ValueError(f"expected (N>=2, {self.linear.in_features}) descriptors, got {tuple(x.shape)}")
        mean = x.mean(dim=0)
        centred = x - mean
        covariance = centred.T @ centred / (x.shape[0] - 1)
        eigenvalues, eigenvectors = torch.linalg.eigh(covariance)  # ascending
        top = torch.argsort(eigenvalues, descending=True)[: self.linear.out_features]
        eigenvalues = eigenvalues.clamp(min=0) + shrinkage * eigenvalues.clamp(min=0).mean() + 1e-12
        weight = (eigenvectors[:, top] / eigenvalues[top].sqrt()).T
        self.linear.weight.copy_(weight.to(self.linear.weight))
        self.linear.bias.copy_((-weight @ mean).to(self.linear.bias))


def load_whitening(path: str | os.PathLike[str]) -> LearnedWhitening | None:
    """The whitening stored in a training checkpoint, or None when it was trained without one."""
    checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    state = checkpoint.get("whitening") if isinstance(checkpoint, dict) else None
    if not state:
        return None
    try:
        out_dim, dim = state["linear.weight"].shape
        whitening = LearnedWhitening(int(dim), int(out_dim))
        whitening.load_state_dict(state)
    except (KeyError, RuntimeError, ValueError) as e:
        raise WeightsError(f"{path}: unreadable whitening state ({e})") from None
    return whitening.eval()


def fit_whitening(vectors: np.ndarray, out_dim: int, shrinkage: float = 0.1) -> LearnedWhitening:
    """PCA-whitening to ``out_dim`` learnt from ``(N, D)`` unit descriptors of a collection, without labels
    (Radenovic et al.'s "learned whitening" without the pairs: the collection's own statistics)."""
    x = torch.from_numpy(np.asarray(vectors, np.float32))
    if x.ndim != 2 or len(x) < 2:
        raise ValueError(f"need (N >= 2, D) vectors to learn a whitening, got {tuple(x.shape)}")
    whitening = LearnedWhitening(x.shape[1], min(out_dim, x.shape[1]))
    whitening.init_from_pca(x, shrinkage=shrinkage)
    return whitening.eval()


def save_whitened_model(
    path: str | os.PathLike[str],
    state_dict: Mapping[str, torch.Tensor],
    whitening: LearnedWhitening,
    embedding: Mapping[str, object],
) -> None:
    """A checkpoint ``build_embedding_net`` serves: the network's weights with the whitening after GeM
    (same layout as a training checkpoint: ``state_dict``, ``whitening``, ``embedding``)."""
    checkpoint = {
        "state_dict": {k: v.detach().cpu() for k, v in state_dict.items()},
        "whitening": {k: v.detach().cpu() for k, v in whitening.state_dict().items()},
        "embedding": dict(embedding),
    }
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(target, lambda handle: torch.save(checkpoint, handle))
