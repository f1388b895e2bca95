from __future__ import annotations

import numpy as np
import pytest

from retrieval_core.rerank.patches import patch_similarity, select_patches


def _feature_map(rng: np.random.Generator, channels: int = 64, size: int = 7) -> np.ndarray:
    """A post-ReLU-like (C, H, W) map: sparse non-negative activations."""
    return np.maximum(rng.normal(0, 1, (channels, size, size)), 0).astype(np.float32)


def test_selects_strongest_locations_normalised() -> None:
    rng = np.random.default_rng(0)
    fmap = _feature_map(rng)
    fmap[:, 2, 3] *= 10  # strongest location
    fmap[:, 5, 1] *= 5  # second strongest
    fmap[:, 0, 0] = 0  # dead location
    patches = select_patches(fmap, top_n=4)
    assert patches.shape == (4, 64) and patches.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(patches, axis=1), 1.0, atol=1e-6)
    np.testing.assert_allclose(patches[0], fmap[:, 2, 3] / np.linalg.norm(fmap[:, 2, 3]), atol=1e-6)
    np.testing.assert_allclose(patches[1], fmap[:, 5, 1] / np.linalg.norm(fmap[:, 5, 1]), atol=1e-6)
    everything = select_patches(fmap, top_n=100)
    assert everything.shape == (48, 64)  # 49 locations minus the dead one


def test_accepts_torch_tensors() -> None:
    torch = pytest.importorskip("torch")
    fmap = _feature_map(np.random.default_rng(1))
    np.testing.assert_allclose(select_patches(torch.from_numpy(fmap), 8), select_patches(fmap, 8), atol=1e-6)


def test_bad_inputs_raise() -> None:
    with pytest.raises(ValueError):
        select_patches(np.ones((4, 4)), top_n=2)
    with pytest.raises(ValueError):
        select_patches(np.ones((4, 4, 4)), top_n=0)
    with pytest.raises(ValueError):
        patch_similarity(np.ones((2, 4)), np.ones((2, 4)), method="sum")  # type: ignore[arg-type]


def test_similarity_ranks_same_content_above_other_content() -> None:
    rng = np.random.default_rng(2)
    base = _feature_map(rng)
    # The same content seen again: shifted by one cell, rescaled, with noise.
    same = np.roll(base, 1, axis=2) * 1.5 + np.maximum(rng.normal(0, 0.2, base.shape), 0)
    other = _feature_map(rng)
    q, s, o = (select_patches(m, top_n=16) for m in (base, same, other))
    for method in ("asymmetric", "mutual_nn"):
        assert patch_similarity(q, q, method) == pytest.approx(1.0, abs=1e-5)  # type: ignore[arg-type]
        assert patch_similarity(q, s, method) > patch_similarity(q, o, method) + 0.1  # type: ignore[arg-type]
    assert patch_similarity(q, o, "mutual_nn") <= patch_similarity(q, o, "asymmetric")


def test_orthogonal_and_empty_sets_score_zero() -> None:
    eye = np.eye(8, dtype=np.float32)
    assert patch_similarity(eye[:4], eye[4:], "asymmetric") == pytest.approx(0.0)
    assert patch_similarity(eye[:4], eye[4:], "mutual_nn") == pytest.approx(0.0)
    assert patch_similarity(np.zeros((0, 8), np.float32), eye) == 0.0
    assert patch_similarity(eye, np.zeros((0, 8), np.float32), "mutual_nn") == 0.0
    # mutual_nn: two query patches compete for one index patch, only one counts.
    query = np.stack([eye[0], eye[0]])
    assert patch_similarity(query, eye[:1], "asymmetric") == pytest.approx(1.0)
    assert patch_similarity(query, eye[:1], "mutual_nn") == pytest.approx(0.5)
