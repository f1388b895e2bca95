"""Metric-learning losses on unit-norm embeddings, and the classification heads of recipe E2.

The thesis trained with one random partner per sample; `contrastive_loss` instead uses every pair of a PxK
batch (``P·K(K-1)/2`` positive and ``K²·P(P-1)/2`` negative pairs) and weights the hardest negatives most.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["ArcFaceHead", "LinearClassifierHead", "contrastive_loss"]


def contrastive_loss(
    embeddings: torch.Tensor,
    labels: torch.Tensor,
    margin: float = 0.4,
    hard_negative_weight: float = 10.0,
) -> torch.Tensor:
    """Contrastive loss over all pairs of a batch, with cosine distance ``d = 1 - cos``.

    ``loss = mean_{positive pairs} d + sum_{negative pairs} w * relu(margin - d)``

    - Positives contribute ``d`` (not ``d²``: the thesis's form; its gradient does not vanish as a pair
      closes in, which pulls views of a landmark tightly together).
    - Negatives contribute ``relu(margin - d)``, so only pairs closer than the margin are pushed apart.
    - Hard-negative emphasis: ``w = softmax(hard_negative_weight * cos)`` over the batch's negative pairs
      (summing to 1; computed without gradient, like a sampling weight). ``hard_negative_weight = 0`` is the
      plain mean over negative pairs; larger values concentrate on the most similar, i.e. most confusing,
      negatives, without the zero gradient that keeping only the single hardest pair gives most pairs.
    - Each unordered pair counts once; a pair type absent from the batch contributes 0.

    Args:
        embeddings: ``(B, D)`` L2-normalised.
        labels: ``(B,)`` integer class ids.

    Returns:
        Scalar tensor (0 with a gradient path when the batch has no pair at all).
    """
    if embeddings.ndim != 2 or labels.shape != embeddings.shape[:1]:
        raise ValueError(
            f"expected (B, D) embeddings and (B,) labels, got {tuple(embeddings.shape)} and "
            f"{tuple(labels.shape)}"
        )
    embeddings = embeddings.float()
    similarity = embeddings @ embeddings.T
    distance = 1.0 - similarity
    n = embeddings.shape[0]
    upper = torch.ones(n, n, dtype=torch.bool, device=embeddings.device).triu(diagonal=1)
    same = labels[:, None] == labels[None, :]
    positive, negative = same & upper, ~same & upper

    loss = embeddings.sum() * 0.0
    if positive.any():
        loss = loss + distance[positive].mean()
    if negative.any():
        weights = torch.softmax(hard_negative_weight * similarity[negative].detach(), dim=0)
        loss = loss + (weights * F.relu(margin - distance[negative])).sum()
    return loss


class LinearClassifierHead(nn.Module):
    """Plain linear classifier over pooled descriptors (recipe E2 without ArcFace).

    Shape: ``(B, D)`` pooled (not necessarily normalised) descriptors → ``(B, num_classes)`` logits.
    """

    def __init__(self, dim: int, num_classes: int) -> None:
        super().__init__()
        self.fc = nn.Linear(dim, num_classes)

    def forward(self, features: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        del labels  # same call signature as ArcFaceHead
        return self.fc(features)


class ArcFaceHead(nn.Module):
    """Additive angular margin (ArcFace, Deng et al. CVPR 2019) classifier over normalised embeddings.

    Logits are ``scale * cos(theta_j)``, with ``theta_y + margin`` for the true class during training: a
    sample is only classified confidently when it lies within an angle of ``margin`` closer to its class
    centre than to any other, which is a retrieval-friendly (angular) constraint, unlike softmax over a
    linear layer. Where ``theta_y + margin`` would pass pi the usual linear fallback keeps it monotonic.

    Shape: ``(B, D)`` embeddings (+ ``(B,)`` labels) → ``(B, num_classes)`` logits.
    """

    def __init__(self, dim: int, num_classes: int, scale: float = 30.0, margin: float = 0.3) -> None:
        super().__init__()
        if num_classes < 2:
            raise ValueError(f"ArcFace needs at least 2 classes, got {num_classes}")
        self.weight = nn.Parameter(torch.empty(num_classes, dim))
        nn.init.xavier_uniform_(self.weight)
        self.scale = scale
        self.margin = margin

    def forward(self, embeddings: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        eps = 1e-6
        cos = F.linear(F.normalize(embeddings.float(), dim=-1), F.normalize(self.weight, dim=-1))
        cos = cos.clamp(-1.0 + eps, 1.0 - eps)
        if labels is None:
            return self.scale * cos
        target = cos.gather(1, labels[:, None])
        sin = (1.0 - target.pow(2)).sqrt()
        shifted = target * math.cos(self.margin) - sin * math.sin(self.margin)
        fallback = target - math.sin(math.pi - self.margin) * self.margin
        shifted = torch.where(target > math.cos(math.pi - self.margin), shifted, fallback)
        return self.scale * cos.scatter(1, labels[:, None], shifted)

    def extra_repr(self) -> str:
        return f"classes={self.weight.shape[0]}, dim={self.weight.shape[1]}, s={self.scale}, m={self.margin}"
