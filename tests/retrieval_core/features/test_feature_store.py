from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest

from retrieval_core.datasets.synthetic import make_scene, render_view
from retrieval_core.features.sift import LocalFeatures, SiftConfig, extract_sift
from retrieval_core.features.store import LocalFeatureStore


@pytest.fixture(scope="module")
def feats() -> LocalFeatures:
    view, _ = render_view(make_scene(3, (240, 320)), np.random.default_rng(0), out_size=(240, 320))
    return extract_sift(view, SiftConfig(max_keypoints=300))


def test_round_trip_is_exact(tmp_path: Path, feats: LocalFeatures) -> None:
    store = LocalFeatureStore(tmp_path, SiftConfig(max_keypoints=300).key)
    store.save("img-1", feats)
    loaded = store.load("img-1")
    np.testing.assert_array_equal(loaded.keypoints, feats.keypoints)
    np.testing.assert_array_equal(loaded.descriptors, feats.descriptors)
    assert loaded.descriptors.dtype == np.uint8 and loaded.keypoints.dtype == np.float32
    assert loaded.image_size == feats.image_size and loaded.pixel_scale == feats.pixel_scale
    assert loaded.scales is not None and feats.scales is not None
    np.testing.assert_allclose(loaded.scales, feats.scales, rtol=1e-3)
    # Compact: ~1 byte per descriptor component, no pickles.
    size = store.path_for("img-1").stat().st_size
    assert size < len(feats) * (128 + 4 * 4) + 4096


def test_versioned_sharded_layout(tmp_path: Path, feats: LocalFeatures) -> None:
    store = LocalFeatureStore(tmp_path, "rootsift-v1")
    path = Path(store.save(42, feats))  # a local store says where the file went
    assert path.parent.parent == tmp_path / "rootsift-v1"
    assert len(path.parent.name) == 2 and int(path.parent.name, 16) >= 0
    assert path.name == "42.npz"
    assert [p.name for p in path.parent.iterdir()] == ["42.npz"]  # no temp file left behind
    assert list(store.ids()) == ["42"]
    other = LocalFeatureStore(tmp_path, "rootsift-v2")
    assert store.has(42) and not other.has(42)


def test_overwrite_has_and_delete(tmp_path: Path, feats: LocalFeatures) -> None:
    store = LocalFeatureStore(tmp_path, "k")
    store.save("a", feats)
    empty = LocalFeatures.empty((10, 20))
    store.save("a", empty)
    loaded = store.load("a")
    assert len(loaded) == 0 and loaded.descriptors.shape == (0, 128) and loaded.image_size == (10, 20)
    assert store.delete("a") and not store.has("a")
    assert not store.delete("a")
    with pytest.raises(KeyError):
        store.load("a")


def test_load_many_reports_missing_and_corrupt(
    tmp_path: Path, feats: LocalFeatures, caplog: pytest.LogCaptureFixture
) -> None:
    store = LocalFeatureStore(tmp_path, "k")
    store.save("a", feats)
    store.save("b", feats)
    store.path_for("b").write_bytes(b"not a zip file")
    with caplog.at_level(logging.WARNING):
        loaded = store.load_many(["a", "b", "c"])
    assert list(loaded) == ["a"]
    assert loaded.missing == ("b", "c")
    np.testing.assert_array_equal(loaded["a"].descriptors, feats.descriptors)
    assert "2 of 3" in caplog.text and "unreadable" in caplog.text


@pytest.mark.parametrize("bad", ["../etc", "a/b", "", ".hidden", "x" * 300])
def test_unsafe_names_are_refused(tmp_path: Path, bad: str) -> None:
    store = LocalFeatureStore(tmp_path, "k")
    with pytest.raises(ValueError):
        store.path_for(bad)
    with pytest.raises(ValueError):
        LocalFeatureStore(tmp_path, bad)
