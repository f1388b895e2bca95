from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from retrieval_core.eval.feature_disk_cache import FeatureCache
from retrieval_core.features.sift import LocalFeatures, SiftConfig

IDS = ["a/1.jpg", "a/2 (copy).jpg", "Sacré-Cœur/3.jpg"]


def _patches(n: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, 8)).astype(np.float16)


def test_arrays_round_trip_and_persist(tmp_path: Path) -> None:
    cache = FeatureCache(tmp_path)
    vectors = np.random.default_rng(0).normal(size=(3, 5)).astype(np.float32)
    assert cache.missing("model-a", IDS) == IDS
    cache.put("model-a", dict(zip(IDS, vectors, strict=True)), {IDS[0]: 0.25})
    cache.put("model-a-patches", {IDS[0]: _patches(4, 1), IDS[1]: _patches(0, 2), IDS[2]: _patches(2, 3)}, {})

    again = FeatureCache(tmp_path)  # a new process reads what the first wrote
    assert again.missing("model-a", [*IDS, "b/4.jpg"]) == ["b/4.jpg"]
    np.testing.assert_array_equal(again.load_matrix("model-a", IDS[::-1]), vectors[::-1])
    patches = again.load("model-a-patches", IDS)
    assert [p.shape for p in patches] == [(4, 8), (0, 8), (2, 8)] and patches[0].dtype == np.float16
    np.testing.assert_array_equal(patches[2], _patches(2, 3))
    seconds = again.seconds("model-a", IDS)
    assert seconds[0] == 0.25 and np.isnan(seconds[1:]).all()
    assert again.nbytes("model-a", IDS[:2]) == 2 * 5 * 4
    assert again.stats.total_computed == 0 and again.stats.loaded["model-a"] == 3
    with pytest.raises(KeyError, match=r"b/4\.jpg"):
        again.load("model-a", ["b/4.jpg"])
    with pytest.raises(ValueError, match="one row per image"):
        again.load_matrix("model-a-patches", IDS)


def test_put_adds_and_replaces_and_keeps_one_generation(tmp_path: Path) -> None:
    cache = FeatureCache(tmp_path)
    cache.put("k", {"x": np.zeros(3, np.float32), "y": np.ones(3, np.float32)}, {})
    cache.put("k", {"y": np.full(3, 2, np.float32), "z": np.full(3, 3, np.float32)}, {})
    assert cache.stats.computed["k"] == 4
    np.testing.assert_array_equal(FeatureCache(tmp_path).load_matrix("k", ["x", "y", "z"])[:, 0], [0, 2, 3])
    assert sorted(p.name for p in (tmp_path / "k").iterdir()) == [
        "index.json",
        "offsets.2.npy",
        "rows.2.npy",
        "seconds.2.npy",
    ]
    with pytest.raises(ValueError, match="share row shape"):
        cache.put("k", {"w": np.zeros(4, np.float32)}, {})
    with pytest.raises(ValueError, match="plain file name"):
        cache.missing("../escape", ["x"])


def test_sift_features_by_any_relpath(tmp_path: Path) -> None:
    cache = FeatureCache(tmp_path)
    cfg = SiftConfig(max_keypoints=10).key
    rng = np.random.default_rng(0)
    features = LocalFeatures(
        keypoints=rng.uniform(0, 50, (6, 2)).astype(np.float32),
        descriptors=rng.integers(0, 255, (6, 128)).astype(np.uint8),
        image_size=(64, 48),
    )
    assert cache.sift_missing(cfg, IDS) == IDS
    cache.put_sift(cfg, {name: features for name in IDS}, {IDS[2]: 0.5})

    again = FeatureCache(tmp_path)
    assert again.sift_missing(cfg, IDS) == [] and again.sift_missing(SiftConfig().key, IDS) == IDS
    loaded = again.load_sift(cfg, [IDS[2]])[IDS[2]]
    np.testing.assert_array_equal(loaded.descriptors, features.descriptors)
    assert loaded.image_size == (64, 48)
    assert again.sift_seconds(cfg, IDS)[2] == 0.5 and np.isnan(again.sift_seconds(cfg, IDS)[0])
    assert again.sift_nbytes(cfg, IDS) > 3 * 6 * 128


def test_codebook_is_trained_once(tmp_path: Path) -> None:
    trained = []

    def train() -> np.ndarray:
        trained.append(1)
        return np.arange(8, dtype=np.float32).reshape(2, 4)

    first = FeatureCache(tmp_path).codebook("vlad-k2", train, {"k": 2})
    second = FeatureCache(tmp_path).codebook("vlad-k2", train, {"k": 2})
    np.testing.assert_array_equal(first, second)
    assert len(trained) == 1


def test_cache_is_bound_to_one_collection(tmp_path: Path) -> None:
    (tmp_path / "one").mkdir()
    (tmp_path / "two").mkdir()
    FeatureCache(tmp_path / "cache", collection=tmp_path / "one")
    FeatureCache(tmp_path / "cache", collection=tmp_path / "one")
    with pytest.raises(ValueError, match="holds features of"):
        FeatureCache(tmp_path / "cache", collection=tmp_path / "two")
