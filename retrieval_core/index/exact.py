"""An exact, in-memory ``VectorIndex``: brute-force inner products in numpy.

Evaluation and tests search with it so that figures do not depend on ANN recall or on a running server;
ties are broken by insertion order, so rankings are reproducible.
"""

from __future__ import annotations

import functools
from collections import Counter
from collections.abc import Mapping, Sequence

import numpy as np

from retrieval_core.index.filters import SearchFilters
from retrieval_core.index.vector_index import ImageId, VectorHit

__all__ = ["ExactIndex"]


class ExactIndex:
    """``ids[i]`` owns row ``vectors[i]`` of an ``(N, D)`` float32 matrix (unit rows for cosine)."""

    def __init__(
        self,
        ids: Sequence[ImageId],
        vectors: np.ndarray,
        landmark_ids: Sequence[int | None] | None = None,
    ) -> None:
        matrix = np.asarray(vectors, np.float32)
        if matrix.ndim != 2 or len(matrix) != len(ids):
            raise ValueError(f"need one (D,) row per id: {len(ids)} ids, vectors {matrix.shape}")
        if len(set(ids)) != len(ids):
            raise ValueError("ids must be unique")
        if landmark_ids is not None and len(landmark_ids) != len(ids):
            raise ValueError("landmark_ids must have one entry per id")
        self.ids = list(ids)
        self.vectors = matrix
        self.dim = int(matrix.shape[1]) if matrix.size else int(matrix.shape[-1])
        self._landmarks = list(landmark_ids) if landmark_ids is not None else [None] * len(self.ids)
        self._row = {image_id: row for row, image_id in enumerate(self.ids)}

    def __len__(self) -> int:
        return len(self.ids)

    def shares(self, landmark_ids: Sequence[int]) -> dict[int, float]:
        """Each landmark's fraction of the index (``LandmarkShares``); landmarks it does not hold are left
        out."""
        counts, n = self._landmark_counts, max(len(self.ids), 1)
        return {label: counts[label] / n for label in landmark_ids if label in counts}

    @functools.cached_property
    def _landmark_counts(self) -> Counter[int]:
        """Images per landmark, counted on first use (the index never changes)."""
        return Counter(label for label in self._landmarks if label is not None)

    def search(
        self,
        queries: np.ndarray,
        k: int = 10,
        *,
        exclude_ids: Sequence[ImageId] = (),
        filters: SearchFilters | None = None,
    ) -> list[list[VectorHit]]:
        """Exact top ``k`` per query of ``(Q, D)``; ``filters`` are not supported (it stores no scalars)."""
        if filters:
            raise ValueError("ExactIndex does not evaluate search filters; use the Milvus store")
        queries = np.atleast_2d(np.asarray(queries, np.float32))
        if queries.shape[1] != self.dim:
            raise ValueError(f"expected queries of shape (Q, {self.dim}), got {queries.shape}")
        if not self.ids:
            return [[] for _ in queries]
        scores = queries @ self.vectors.T
        excluded = [self._row[i] for i in exclude_ids if i in self._row]
        scores[:, excluded] = -np.inf
        k = min(k, len(self.ids) - len(set(excluded)))
        out: list[list[VectorHit]] = []
        for row in scores:
            if k <= 0:
                out.append([])
                continue
            top = np.argpartition(-row, k - 1)[:k]
            top = top[np.lexsort((top, -row[top]))]
            out.append([VectorHit(self.ids[i], float(row[i]), self._landmarks[i]) for i in top])
        return out

    def get_vectors(self, image_ids: Sequence[ImageId]) -> Mapping[ImageId, np.ndarray]:
        return {i: self.vectors[self._row[i]] for i in image_ids if i in self._row}
