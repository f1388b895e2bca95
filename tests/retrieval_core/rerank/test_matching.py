from __future__ import annotations

import numpy as np
import pytest

from retrieval_core.datasets.synthetic import make_scene, render_view
from retrieval_core.features.sift import LocalFeatures, SiftConfig, extract_sift
from retrieval_core.rerank.matching import match_descriptors


def _random_descriptors(rng: np.random.Generator, n: int) -> np.ndarray:
    return rng.integers(0, 256, (n, 128)).astype(np.uint8)


def test_permutation_is_recovered_exactly() -> None:
    rng = np.random.default_rng(0)
    a = _random_descriptors(rng, 300)
    perm = rng.permutation(300)
    for method in ("mutual_nn", "ratio", "mutual_ratio"):
        matches = match_descriptors(a, a[perm], method=method)  # type: ignore[arg-type]
        assert matches.shape == (300, 2) and matches.dtype == np.int64
        np.testing.assert_array_equal(perm[matches[:, 1]], matches[:, 0])


def test_mutual_check_and_ratio_test_drop_what_they_should() -> None:
    rng = np.random.default_rng(1)
    a = rng.normal(0, 1, (50, 128)).astype(np.float32)
    a /= np.linalg.norm(a, axis=1, keepdims=True)
    b = a + rng.normal(0, 0.02, a.shape).astype(np.float32)
    b[1] = a[0] + rng.normal(0, 0.02, 128)  # a[0] gets a twin in b (ambiguous); a[1] loses its partner
    mutual = match_descriptors(a, b, "mutual_nn")
    ratio = match_descriptors(a, b, "ratio", ratio=0.8)
    both = match_descriptors(a, b, "mutual_ratio", ratio=0.8)
    assert 0 in mutual[:, 0] and 0 not in ratio[:, 0]  # ambiguous: kept by cross-check, not by ratio
    assert 1 not in mutual[:, 0]  # a[1]'s nearest neighbour prefers its own partner
    for matches in (mutual, ratio, both):
        assert all(i in matches[:, 0] for i in range(2, 50))
        assert np.all(matches[matches[:, 0] >= 2, 1] == matches[matches[:, 0] >= 2, 0])
    as_set = [{tuple(m) for m in x.tolist()} for x in (mutual, ratio, both)]
    assert as_set[2] == as_set[0] & as_set[1]


def test_empty_inputs_and_bad_arguments() -> None:
    a = np.zeros((0, 128), np.uint8)
    b = np.ones((5, 128), np.uint8)
    assert match_descriptors(a, b).shape == (0, 2)
    assert match_descriptors(b, a).shape == (0, 2)
    assert match_descriptors(b, b[:1], "ratio").shape == (0, 2)  # no second neighbour to compare
    with pytest.raises(ValueError):
        match_descriptors(b, b, "flann")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        match_descriptors(b, b, ratio=1.5)
    with pytest.raises(ValueError):
        match_descriptors(b, np.ones((5, 64), np.uint8))


@pytest.fixture(scope="module")
def two_views() -> tuple[LocalFeatures, LocalFeatures, np.ndarray]:
    scene = make_scene(5, (360, 480))
    rng = np.random.default_rng(2)
    (va, ha), (vb, hb) = render_view(scene, rng, (360, 480)), render_view(scene, rng, (360, 480))
    cfg = SiftConfig(max_keypoints=800)
    return extract_sift(va, cfg), extract_sift(vb, cfg), hb @ np.linalg.inv(ha)


def test_matches_between_views_follow_the_true_homography(
    two_views: tuple[LocalFeatures, LocalFeatures, np.ndarray],
) -> None:
    fa, fb, h_ab = two_views
    correct: dict[str, float] = {}
    for method in ("mutual_nn", "mutual_ratio"):
        m = match_descriptors(fa.descriptors, fb.descriptors, method)  # type: ignore[arg-type]
        pa = np.hstack([fa.keypoints[m[:, 0]], np.ones((len(m), 1), np.float32)]) @ h_ab.T
        error = np.linalg.norm(pa[:, :2] / pa[:, 2:] - fb.keypoints[m[:, 1]], axis=1)
        assert len(m) > 100
        correct[method] = float(np.mean(error < 3.0))
    assert correct["mutual_ratio"] > 0.85
    assert correct["mutual_ratio"] >= correct["mutual_nn"]

