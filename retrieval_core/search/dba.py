"""Database-side augmentation (DBA): each index vector replaced by a weighted sum of itself and its nearest
neighbours in the index, so images of one place pull together (Arandjelovic & Zisserman; the weights are
alpha-QE's ``max(cos, 0) ** alpha``). Queries stay as they are.
"""

from __future__ import annotations

import numpy as np

__all__ = ["augment_database"]

_CHUNK = 2048


def augment_database(vectors: np.ndarray, neighbours: int, alpha: float = 3.0) -> np.ndarray:
    """``(N, D)`` unit vectors -> ``(N, D)`` unit DBA vectors over each one's ``neighbours`` nearest others
    (exact, in chunks of rows, so memory stays ``O(chunk * N)``)."""
    matrix = np.asarray(vectors, np.float32)
    n = len(matrix)
    k = min(neighbours, n - 1)
    if k <= 0:
        return matrix.copy()
    out = matrix.astype(np.float64)
    for start in range(0, n, _CHUNK):
        rows = np.arange(start, min(start + _CHUNK, n))
        scores = matrix[rows] @ matrix.T
        scores[np.arange(len(rows)), rows] = -np.inf  # never one's own neighbour
        top = np.argpartition(-scores, k - 1, axis=1)[:, :k]
        weights = np.maximum(np.take_along_axis(scores, top, axis=1), 0.0) ** alpha
        out[rows] += np.einsum("rk,rkd->rd", weights, matrix[top])
    out /= np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)
    return out.astype(np.float32)
