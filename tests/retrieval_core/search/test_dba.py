"""Database-side augmentation: the incremental form used by serving equals the batch form of evaluation."""

from __future__ import annotations

import numpy as np

from retrieval_core.index.exact import ExactIndex
from retrieval_core.search.dba import augment_database, refresh_augmented


def _clustered(n: int, dim: int = 16, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(n // 4, dim))
    vectors = centres[np.arange(n) % len(centres)] + 0.3 * rng.normal(size=(n, dim))
    return (vectors / np.linalg.norm(vectors, axis=1, keepdims=True)).astype(np.float32)


def test_refreshing_new_images_matches_a_full_rebuild_for_them_and_their_neighbours() -> None:
    vectors = _clustered(40)
    ids = list(range(40))
    new_ids = ids[-5:]
    full = augment_database(vectors, neighbours=3)
    before = augment_database(vectors[:-5], neighbours=3)  # what the old images held before the arrivals

    refreshed = refresh_augmented(ExactIndex(ids, vectors), new_ids, neighbours=3)

    assert set(new_ids) <= set(refreshed)
    old_updated = [i for i in refreshed if i not in new_ids]
    # every old image that now lists a new one among its 3 nearest is refreshed
    scores = vectors @ vectors.T
    np.fill_diagonal(scores, -np.inf)
    listing_new = {i for i in ids[:-5] if set(np.argsort(-scores[i])[:3]) & set(new_ids)}
    assert listing_new and listing_new <= set(old_updated)
    for image_id, vector in refreshed.items():
        np.testing.assert_allclose(vector, full[image_id], atol=1e-5)
    # at least one old image changed because a new one entered its neighbour list
    assert any(not np.allclose(refreshed[i], before[i], atol=1e-4) for i in old_updated)


def test_no_neighbours_means_no_augmentation() -> None:
    vectors = _clustered(8)
    assert refresh_augmented(ExactIndex(list(range(8)), vectors), [7], neighbours=0) == {}
    np.testing.assert_allclose(augment_database(vectors, 0), vectors)
