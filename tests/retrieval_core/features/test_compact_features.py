"""Compact local-feature formats: exact round trips of what they keep, a store key per format, and SIFT
re-ranking that still verifies matching synthetic views while rejecting other scenes."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from retrieval_core.datasets.synthetic import make_scene, render_view
from retrieval_core.features.compact import (
    DESCRIPTOR_LEVELS,
    FULL_FORMAT,
    LocalFeatureFormat,
    as_stored,
    decode_local_features,
    encode_local_features,
    is_known_meta,
)
from retrieval_core.features.sift import LocalFeatures, SiftConfig, extract_sift
from retrieval_core.features.store import LocalFeatureStore
from retrieval_core.rerank.scorer import QueryFeatures
from retrieval_core.rerank.sift_scorer import SiftScorer
from retrieval_core.search.decode import DecodePolicy, local_features_key

SIZE = (360, 480)  # (height, width)
N_SCENES = 3
COMPACT = LocalFeatureFormat(descriptor_bits=2, geometry="uint16", max_keypoints=600)
FORMATS = [
    LocalFeatureFormat(4, "uint16"),
    LocalFeatureFormat(2, "uint16"),
    LocalFeatureFormat(2, "float32", 300),
    LocalFeatureFormat(8, "uint16"),
]


@pytest.fixture(scope="module")
def views() -> list[tuple[LocalFeatures, LocalFeatures]]:
    """Per scene: an index view with 1000 keypoints and a query view with 500."""
    out = []
    for seed in range(N_SCENES):
        scene = make_scene(200 + seed, SIZE)
        rng = np.random.default_rng(seed)
        (index_view, _), (query_view, _) = render_view(scene, rng, SIZE), render_view(scene, rng, SIZE)
        out.append(
            (
                extract_sift(index_view, SiftConfig(max_keypoints=1000)),
                extract_sift(query_view, SiftConfig(max_keypoints=500)),
            )
        )
    return out


@pytest.mark.parametrize("fmt", FORMATS, ids=lambda f: f.name)
def test_round_trip_keeps_geometry_and_quantises_descriptors(views: list, fmt: LocalFeatureFormat) -> None:
    features = views[0][0]
    decoded = decode_local_features(*encode_local_features(features, fmt).values())
    n = min(len(features), fmt.max_keypoints or len(features))
    assert len(decoded) == n and decoded.image_size == features.image_size
    assert decoded.pixel_scale == features.pixel_scale
    # The strongest n are kept, in order; 16-bit positions are within 1/65535 of the image side.
    tolerance = max(features.image_size) / 65535 if fmt.geometry == "uint16" else 0.0
    np.testing.assert_allclose(decoded.keypoints, features.keypoints[:n], atol=tolerance + 1e-4)
    assert decoded.scales is not None and decoded.angles is not None
    assert features.scales is not None and features.angles is not None
    np.testing.assert_allclose(decoded.scales, features.scales[:n], rtol=1e-3)
    np.testing.assert_allclose(decoded.angles, features.angles[:n], atol=0.25)
    assert decoded.descriptors.shape == (n, 128) and decoded.descriptors.dtype == np.uint8
    if fmt.descriptor_bits == 8:
        np.testing.assert_array_equal(decoded.descriptors, features.descriptors[:n])
    else:
        levels = DESCRIPTOR_LEVELS[fmt.descriptor_bits].astype(int)
        original = features.descriptors[:n].astype(int)
        # Every component became its nearest level.
        nearest = levels[np.abs(original[..., None] - levels).argmin(axis=-1)]
        assert np.abs(decoded.descriptors.astype(int) - original).max() <= np.abs(nearest - original).max()
        assert set(np.unique(decoded.descriptors)) <= set(levels.tolist())
    # Encoding what was decoded changes nothing: a stored file re-saved is the same file.
    again = as_stored(decoded, fmt)
    np.testing.assert_array_equal(again.descriptors, decoded.descriptors)
    np.testing.assert_array_equal(again.keypoints, decoded.keypoints)


def test_full_format_is_todays_layout(views: list) -> None:
    features = views[0][0]
    arrays = encode_local_features(features, FULL_FORMAT)
    assert arrays["meta"].tolist()[0] == 1 and len(arrays["meta"]) == 4
    assert arrays["geometry"].dtype == np.float32 and arrays["descriptors"].shape == (len(features), 128)
    assert as_stored(features, FULL_FORMAT) is features


def test_store_round_trip_and_size(tmp_path: Path, views: list) -> None:
    features = views[0][0]
    policy, sift = DecodePolicy(), SiftConfig()
    full = LocalFeatureStore(tmp_path, local_features_key(sift, policy), FULL_FORMAT)
    compact = LocalFeatureStore(tmp_path, local_features_key(sift, policy, COMPACT), COMPACT)
    full.save("a", features)
    compact.save("a", features)
    loaded, expected = compact.load("a"), as_stored(features, COMPACT)
    np.testing.assert_array_equal(loaded.descriptors, expected.descriptors)
    np.testing.assert_array_equal(loaded.keypoints, expected.keypoints)
    full_bytes, compact_bytes = (store.path_for("a").stat().st_size for store in (full, compact))
    kept = min(len(features), COMPACT.max_keypoints)
    assert compact_bytes <= kept * COMPACT.bytes_per_keypoint() + 1024  # + the .npz's own headers
    assert compact_bytes * 4 < full_bytes
    # An empty image round-trips too.
    compact.save("empty", LocalFeatures.empty((10, 20)))
    assert len(compact.load("empty")) == 0 and compact.load("empty").image_size == (10, 20)


def test_extractor_key_changes_with_the_format(tmp_path: Path, views: list) -> None:
    policy, sift = DecodePolicy(), SiftConfig()
    base = local_features_key(sift, policy)
    assert local_features_key(sift, policy, FULL_FORMAT) == base  # existing stores keep their folder
    keys = {local_features_key(sift, policy, fmt) for fmt in [FULL_FORMAT, COMPACT, *FORMATS]}
    assert len(keys) == 2 + len(FORMATS)
    one = LocalFeatureStore(tmp_path, local_features_key(sift, policy, FORMATS[0]), FORMATS[0])
    other = LocalFeatureStore(tmp_path, local_features_key(sift, policy, FORMATS[1]), FORMATS[1])
    one.save(7, views[0][0])
    assert one.has(7) and not other.has(7)
    with pytest.raises(ValueError, match="does not name its format"):
        LocalFeatureStore(tmp_path, base, COMPACT)


def test_names_parse_back_and_bad_names_say_why() -> None:
    for fmt in [FULL_FORMAT, COMPACT, *FORMATS]:
        assert LocalFeatureFormat.parse(fmt.name) == fmt
    assert LocalFeatureFormat.parse("full") == FULL_FORMAT
    for bad in ("3bit-uint16", "2bit-float16", "2bit-uint16-k", "compact"):
        with pytest.raises(ValueError, match=re.escape("<8|4|2>bit")):
            LocalFeatureFormat.parse(bad)
    with pytest.raises(ValueError, match="descriptor_bits"):
        LocalFeatureFormat(descriptor_bits=3)


def test_unknown_stored_format_is_an_error_not_garbage(tmp_path: Path, views: list) -> None:
    store = LocalFeatureStore(tmp_path, "k")
    arrays = encode_local_features(views[0][0], COMPACT)
    assert is_known_meta(arrays["meta"]) and is_known_meta(
        encode_local_features(views[0][0], FULL_FORMAT)["meta"]
    )
    arrays["meta"] = np.array([9.0, 1, 1, 1, 2, 1])
    assert not is_known_meta(arrays["meta"])
    store.save_arrays("x", **arrays)
    with pytest.raises(ValueError, match="format 9"):
        store.load("x")
    assert "x" in store.load_many(["x"]).missing


def test_rerank_with_compact_features_verifies_matching_views(tmp_path: Path, views: list) -> None:
    """Query view of scene i against the index views of every scene: the matching scene keeps most of
    its verified inliers in the compact format, the others stay below the fusion's min_inliers."""
    policy, sift = DecodePolicy(), SiftConfig(max_keypoints=1000)
    scores = {}
    for fmt in (FULL_FORMAT, COMPACT):
        store = LocalFeatureStore(tmp_path, local_features_key(sift, policy, fmt), fmt)
        for scene, (index_features, _) in enumerate(views):
            store.save(scene, index_features)
        scorer = SiftScorer(store, SiftConfig(max_keypoints=500), min_inliers=8)
        scores[fmt] = np.stack(
            [
                scorer.score(
                    QueryFeatures(vector=np.zeros(1, np.float32), sift=query), list(range(N_SCENES))
                ).raw
                for _, query in views
            ]
        )
    full, compact = scores[FULL_FORMAT], scores[COMPACT]
    matching = np.eye(N_SCENES, dtype=bool)
    assert (full[matching] > 40).all()
    assert (compact[matching] >= 0.5 * full[matching]).all() and (compact[matching] > 25).all()
    assert (compact[~matching] < 8).all()
