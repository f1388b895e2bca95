"""Generalized-mean (GeM) pooling of a CNN feature map into one global descriptor.

GeM (Radenović et al., TPAMI 2018) interpolates between average (p=1) and max pooling (p→∞); p≈3 weights
the strongest activations (the landmark's distinctive parts) more than average pooling does, which is the
standard choice for instance retrieval.
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["GeM"]


class GeM(nn.Module):
    """Generalized-mean pooling: ``(mean(clamp(x, eps) ** p)) ** (1 / p)`` over H and W.

    Args:
        p: initial exponent.
        learnable: train p with the network; otherwise p is a buffer, so state dicts have the same keys
            either way.
        eps: lower clamp; keeps the power and root finite for the zero activations ReLU produces.

    Shape: ``(B, C, H, W) -> (B, C)``.
    """

    def __init__(self, p: float = 3.0, learnable: bool = True, eps: float = 1e-6) -> None:
        super().__init__()
        if p <= 0:
            raise ValueError(f"GeM p must be positive, got {p}")
        p_tensor = torch.full((1,), float(p))
        if learnable:
            self.p = nn.Parameter(p_tensor)
        else:
            self.register_buffer("p", p_tensor)
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 4:
            raise ValueError(f"GeM expects (B, C, H, W), got shape {tuple(x.shape)}")
        p = self.p.to(x.dtype)
        return x.clamp(min=self.eps).pow(p).mean(dim=(-2, -1)).pow(1.0 / p)

    def extra_repr(self) -> str:
        return f"p={self.p.item():.4f}, eps={self.eps}"
