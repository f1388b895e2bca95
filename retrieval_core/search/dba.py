"""Database-side augmentation (DBA): each index vector replaced by a weighted sum of itself and its nearest
neighbours in the index, so images of one place pull together (Arandjelovic & Zisserman; the weights are
alpha-QE's ``max(cos, 0) ** alpha``). Queries stay as they are.

Two forms of one rule: ``augment_database`` for a whole matrix (evaluation), and ``refresh_augmented`` for a
served index that grows: the neighbours come from a ``VectorIndex`` over the raw vectors, so it scales
with the vector store, and the images whose neighbour lists a new image may enter are recomputed too.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence

import numpy as np

from retrieval_core.index.vector_index import VectorHit, VectorIndex

__all__ = ["augment_database", "augment_one", "refresh_augmented"]

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


def augment_one(
    vector: np.ndarray, neighbours: Sequence[VectorHit], stored: Mapping[Hashable, np.ndarray], alpha: float
) -> np.ndarray:
    """``(D,)`` raw vector + its neighbours' raw vectors weighted by ``max(cos, 0) ** alpha``, unit length."""
    out = np.asarray(vector, np.float64).copy()
    for hit in neighbours:
        if hit.image_id in stored:
            out += max(hit.score, 0.0) ** alpha * np.asarray(stored[hit.image_id], np.float64)
    return (out / max(float(np.linalg.norm(out)), 1e-12)).astype(np.float32)


def refresh_augmented(
    raw: VectorIndex,
    new_ids: Sequence[Hashable],
    neighbours: int,
    alpha: float = 3.0,
    *,
    reach: int = 4,
) -> dict[Hashable, np.ndarray]:
    """DBA vectors ``{id: (D,)}`` for ``new_ids`` and for the images whose neighbour lists they entered;
    ``raw`` already holds the new raw vectors.

    Images that list a new one among their ``neighbours`` nearest are looked for among its ``reach`` x
    ``neighbours`` nearest (kNN is not symmetric). Every vector returned equals ``augment_database`` over
    ``raw``'s vectors (exact index; up to ANN recall with Milvus); an image that only moved two hops away
    keeps its vector until the next full rebuild.
    """
    if neighbours <= 0 or not new_ids:
        return {}
    vectors = dict(raw.get_vectors(list(new_ids)))
    ids = [i for i in new_ids if i in vectors]
    if not ids:
        return {}
    around = raw.search(np.stack([vectors[i] for i in ids]), k=reach * neighbours + 1)
    candidates = list(dict.fromkeys([*ids, *(hit.image_id for hits in around for hit in hits)]))
    vectors.update(raw.get_vectors([i for i in candidates if i not in vectors]))
    candidates = [i for i in candidates if i in vectors]
    lists = raw.search(np.stack([vectors[i] for i in candidates]), k=neighbours + 1)
    arrived = set(ids)
    changed: dict[Hashable, list[VectorHit]] = {}
    for image_id, hits in zip(candidates, lists, strict=True):
        others = [hit for hit in hits if hit.image_id != image_id][:neighbours]
        if image_id in arrived or any(hit.image_id in arrived for hit in others):
            changed[image_id] = others  # else its neighbour list did not change
    missing = {hit.image_id for others in changed.values() for hit in others} - vectors.keys()
    vectors.update(raw.get_vectors(list(missing)))  # one read for every neighbour not yet at hand
    return {
        image_id: augment_one(vectors[image_id], others, vectors, alpha)
        for image_id, others in changed.items()
    }
