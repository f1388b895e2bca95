from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from retrieval_core.datasets.synthetic import make_scene, render_view
from retrieval_core.features.sift import SiftConfig, extract_sift
from retrieval_core.features.vlad import (
    apply_pca_whitening,
    fit_pca_whitening,
    load_codebook,
    save_codebook,
    train_codebook,
    vlad,
)

N_SCENES, N_VIEWS, K = 4, 3, 32


@pytest.fixture(scope="module")
def descriptors() -> list[list[np.ndarray]]:
    """RootSIFT codes (N, 128) uint8 per scene and view."""
    cfg = SiftConfig(max_keypoints=500)
    out = []
    for seed in range(N_SCENES):
        scene = make_scene(200 + seed, (240, 320))
        rng = np.random.default_rng(seed)
        out.append(
            [extract_sift(render_view(scene, rng, (240, 320))[0], cfg).descriptors for _ in range(N_VIEWS)]
        )
    return out


@pytest.fixture(scope="module")
def codebook(descriptors: list[list[np.ndarray]]) -> np.ndarray:
    return train_codebook(np.vstack([d for views in descriptors for d in views]), k=K, seed=0)


def test_codebook_shape_and_determinism(descriptors: list[list[np.ndarray]], codebook: np.ndarray) -> None:
    assert codebook.shape == (K, 128) and codebook.dtype == np.float32
    again = train_codebook(np.vstack([d for views in descriptors for d in views]), k=K, seed=0)
    np.testing.assert_allclose(again, codebook, atol=1e-5)
    with pytest.raises(ValueError):
        train_codebook(np.ones((10, 128), np.uint8), k=K)


def test_vlad_is_unit_and_normalised_per_word(
    descriptors: list[list[np.ndarray]], codebook: np.ndarray
) -> None:
    v = vlad(descriptors[0][0], codebook)
    assert v.shape == (K * 128,) and v.dtype == np.float32
    assert np.linalg.norm(v) == pytest.approx(1.0, abs=1e-5)
    # Intra + power normalisation: every used word's block carries equal weight after the global L2.
    block_norms = np.linalg.norm(v.reshape(K, 128), axis=1)
    used = block_norms > 0
    assert used.sum() > K // 2
    np.testing.assert_allclose(block_norms[used], block_norms[used].max(), rtol=0.35)
    assert not vlad(np.zeros((0, 128), np.uint8), codebook).any()


def test_views_of_one_scene_are_closer_than_other_scenes(
    descriptors: list[list[np.ndarray]], codebook: np.ndarray
) -> None:
    vlads = np.array([[vlad(d, codebook) for d in views] for views in descriptors])  # (S, V, D)
    flat = vlads.reshape(N_SCENES * N_VIEWS, -1)
    sims = flat @ flat.T
    scene_of = np.repeat(np.arange(N_SCENES), N_VIEWS)
    same = scene_of[:, None] == scene_of[None, :]
    np.fill_diagonal(same, False)
    other = scene_of[:, None] != scene_of[None, :]
    for i in range(len(flat)):
        assert sims[i][same[i]].min() > sims[i][other[i]].max()

    pca = fit_pca_whitening(flat, dim=8)
    white = apply_pca_whitening(flat, pca)
    assert white.shape == (len(flat), 8)
    np.testing.assert_allclose(np.linalg.norm(white, axis=1), 1.0, atol=1e-5)
    assert apply_pca_whitening(flat[0], pca).shape == (8,)
    with pytest.raises(ValueError):
        fit_pca_whitening(flat, dim=len(flat))


def test_codebook_save_and_load(tmp_path: Path, codebook: np.ndarray) -> None:
    path = tmp_path / "codebooks" / "sift64.npy"
    save_codebook(path, codebook, {"extractor_key": SiftConfig().key, "seed": 0})
    loaded, settings = load_codebook(path)
    np.testing.assert_array_equal(loaded, codebook)
    assert settings == {"k": K, "dim": 128, "extractor_key": SiftConfig().key, "seed": 0}
    assert sorted(p.name for p in path.parent.iterdir()) == ["sift64.json", "sift64.npy"]
