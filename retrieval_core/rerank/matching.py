"""Tentative descriptor correspondences between two images, by one dense similarity product.

For ~1000 x 1000 RootSIFT descriptors a single matrix product plus arg-maxes takes about a millisecond,
faster than a FLANN index built per pair (the thesis) and exact. Stored uint8 codes are multiplied as int8
with exact int32 sums (VNNI / AMX kernels: about 3x a float32 product on this machine's CPU, and matching is
most of a re-rank's time); float descriptors use float32 BLAS.
"""

from __future__ import annotations

import logging
from typing import Literal

import numpy as np
import torch

from retrieval_core.features.sift import descriptors_to_float

__all__ = ["MatchMethod", "cosine_similarity", "match_descriptors"]

logger = logging.getLogger(__name__)
_INT8_OFFSET = 128
_int8_products = hasattr(torch, "_int_mm")

MatchMethod = Literal["mutual_nn", "ratio", "mutual_ratio"]
_METHODS = ("mutual_nn", "ratio", "mutual_ratio")


def match_descriptors(
    a: np.ndarray,
    b: np.ndarray,
    method: MatchMethod = "mutual_nn",
    ratio: float = 0.8,
    *,
    integer_products: bool = True,
) -> np.ndarray:
    """Match descriptors ``a`` (Na, D) to ``b`` (Nb, D); returns (M, 2) int64 index pairs ``(i_a, i_b)``.

    Inputs are uint8 codes or floats; they are compared by cosine (rows L2-normalised here). Methods:
      ``mutual_nn``: keep i -> j when j's nearest neighbour in ``a`` is i as well (cross-check);
      ``ratio``: Lowe's test, nearest distance < ``ratio`` x second nearest (needs Nb >= 2);
      ``mutual_ratio``: both, which drops most chance matches between unrelated images.
    """
    if method not in _METHODS:
        raise ValueError(f"method must be one of {_METHODS}, got {method!r}")
    if not 0.0 < ratio <= 1.0:
        raise ValueError(f"ratio must be in (0, 1], got {ratio}")
    if len(a) == 0 or len(b) == 0:
        return np.zeros((0, 2), np.int64)
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"descriptor sizes differ: {a.shape} vs {b.shape}")

    sim = cosine_similarity(a, b, integer_products=integer_products)
    rows = np.arange(len(a))
    nn_ab = sim.argmax(axis=1)
    best = sim[rows, nn_ab]
    keep = np.ones(len(a), bool)
    if method in ("mutual_nn", "mutual_ratio"):
        # i -> j is mutual when no other row beats i in column j; a column max is much faster than a
        # column argmax on a row-major matrix.
        keep &= best >= sim.max(axis=0)[nn_ab]
    if method in ("ratio", "mutual_ratio"):
        if len(b) < 2:
            return np.zeros((0, 2), np.int64)
        sim[rows, nn_ab] = -np.inf  # in place: sim is ours and no longer needed whole
        second = sim.max(axis=1)
        # Unit vectors: squared distance = 2 - 2 cos.
        d1 = np.sqrt(np.maximum(2.0 - 2.0 * best, 0.0))
        d2 = np.sqrt(np.maximum(2.0 - 2.0 * second, 0.0))
        keep &= d1 < ratio * d2
    idx = np.flatnonzero(keep)
    if method != "ratio":  # exact ties in a column (duplicate descriptors): keep one pair per column
        idx = np.sort(idx[np.unique(nn_ab[idx], return_index=True)[1]])
    return np.stack([idx, nn_ab[idx]], axis=1).astype(np.int64)


def cosine_similarity(a: np.ndarray, b: np.ndarray, *, integer_products: bool = True) -> np.ndarray:
    """``(Na, D)`` x ``(Nb, D)`` descriptors -> ``(Na, Nb)`` float32 cosines (all-zero rows give 0).

    Two uint8 inputs take exact integer products (unless ``integer_products`` is off); anything else is
    L2-normalised and multiplied in float32.
    """
    global _int8_products
    if integer_products and _int8_products and a.dtype == np.uint8 and b.dtype == np.uint8:
        try:
            return _uint8_cosine(a, b)
        except RuntimeError as error:  # a torch build without CPU int8 products
            _int8_products = False
            logger.warning("int8 descriptor products unavailable (%s): matching in float32", error)
    return descriptors_to_float(a) @ descriptors_to_float(b).T


def _uint8_cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Exact ``a . b`` of uint8 codes from an int8 product of ``a - 128`` and ``b - 128``:
    ``a.b = (a-128).(b-128) + 128 sum(a) + 128 sum(b) - 128^2 D`` (int32 cannot overflow for D <= 4096);
    the corrections and the normalisation are applied in place (each full pass costs as much as the product).
    """
    offset = _INT8_OFFSET
    shifted_a = torch.from_numpy(np.ascontiguousarray(a).view(np.int8) ^ np.int8(-offset))
    shifted_b = torch.from_numpy(np.ascontiguousarray(b).view(np.int8) ^ np.int8(-offset))
    dots = torch._int_mm(shifted_a, shifted_b.T.contiguous())
    row = torch.from_numpy(a.sum(axis=1, dtype=np.int32)) * offset
    column = torch.from_numpy(b.sum(axis=1, dtype=np.int32)) * offset - offset * offset * a.shape[1]
    dots.add_(row[:, None]).add_(column[None, :])
    sim = dots.to(torch.float32)
    sim.mul_(_inverse_norms(a)[:, None]).mul_(_inverse_norms(b)[None, :])
    return sim.numpy()


def _inverse_norms(codes: np.ndarray) -> torch.Tensor:
    """``1 / |row|`` of uint8 codes (0 for all-zero rows, whose products are 0 anyway)."""
    norms = np.sqrt(np.einsum("nd,nd->n", codes, codes, dtype=np.int64)).astype(np.float32)
    return torch.from_numpy(np.divide(1.0, norms, out=np.zeros_like(norms), where=norms > 0))
