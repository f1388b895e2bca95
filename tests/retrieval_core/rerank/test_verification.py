from __future__ import annotations

import cv2
import numpy as np
import pytest

from retrieval_core.datasets.synthetic import make_scene, render_view
from retrieval_core.features.sift import LocalFeatures, SiftConfig, extract_sift
from retrieval_core.rerank.matching import match_descriptors
from retrieval_core.rerank.verification import verify_geometry

SIZE = (360, 480)  # (height, width)
N_SCENES = 4


def _project(h: np.ndarray, points: np.ndarray) -> np.ndarray:
    p = np.hstack([points, np.ones((len(points), 1))]) @ h.T
    return p[:, :2] / p[:, 2:]


def _corner_error(h_est: np.ndarray, h_true: np.ndarray) -> float:
    """Mean distance between where the two homographies send the image corners (pixels)."""
    height, width = SIZE
    corners = np.array([[0, 0], [width - 1, 0], [width - 1, height - 1], [0, height - 1]], np.float64)
    return float(np.linalg.norm(_project(h_est, corners) - _project(h_true, corners), axis=1).mean())


@pytest.fixture(scope="module")
def views() -> list[tuple[LocalFeatures, LocalFeatures, np.ndarray]]:
    """Per scene: features of two random views (homography + photometric change) and H from view a to b."""
    cfg = SiftConfig(max_keypoints=1000)
    out = []
    for seed in range(N_SCENES):
        scene = make_scene(100 + seed, SIZE)
        rng = np.random.default_rng(seed)
        (va, ha), (vb, hb) = render_view(scene, rng, SIZE), render_view(scene, rng, SIZE)
        out.append((extract_sift(va, cfg), extract_sift(vb, cfg), hb @ np.linalg.inv(ha)))
    return out


def _verify(fa: LocalFeatures, fb: LocalFeatures, **kwargs: object) -> tuple[int, np.ndarray | None]:
    matches = match_descriptors(fa.descriptors, fb.descriptors, "mutual_ratio", ratio=0.85)
    result = verify_geometry(fa.keypoints, fb.keypoints, matches, threshold_px=4.0, **kwargs)  # type: ignore[arg-type]
    assert result.inlier_mask.shape == (len(matches),) and result.inlier_mask.sum() == result.inliers
    return result.inliers, result.model


def test_same_scene_many_inliers_and_true_homography(views: list) -> None:
    for fa, fb, h_ab in views:
        inliers, model = _verify(fa, fb)
        assert inliers > 50
        assert model is not None and _corner_error(model, h_ab) < 2.0


def test_different_scenes_almost_no_inliers(views: list) -> None:
    counts = [
        _verify(views[i][0], views[j][1])[0] for i in range(N_SCENES) for j in range(N_SCENES) if i != j
    ]
    assert max(counts) < 12


def test_plain_ransac_fallback_also_verifies(views: list) -> None:
    fa, fb, h_ab = views[0]
    inliers, model = _verify(fa, fb, ransac="ransac")
    assert inliers > 50 and model is not None and _corner_error(model, h_ab) < 3.0


def test_exact_points_with_outliers() -> None:
    rng = np.random.default_rng(0)
    h = np.array([[0.9, -0.2, 30.0], [0.15, 1.1, -12.0], [1e-4, -2e-4, 1.0]])
    pa = rng.uniform(0, 400, (120, 2))
    pb = _project(h, pa) + rng.normal(0, 0.3, (120, 2))
    outliers = rng.choice(120, 40, replace=False)
    pb[outliers] = rng.uniform(0, 400, (40, 2))
    matches = np.stack([np.arange(120), np.arange(120)], axis=1)
    result = verify_geometry(pa, pb, matches)
    truly_in = np.ones(120, bool)
    truly_in[outliers] = False
    assert abs(result.inliers - 80) <= 3
    assert np.mean(result.inlier_mask == truly_in) > 0.95
    assert result.model is not None and _corner_error(result.model, h) < 1.0


def test_mirrored_fit_is_rejected() -> None:
    """A mirror image agrees with a homography of negative determinant; no photo of a place does that."""
    pa = np.random.default_rng(3).uniform(0, 400, (60, 2))
    pb = pa * [-1.0, 1.0] + [400.0, 0.0]
    matches = np.stack([np.arange(60), np.arange(60)], axis=1)
    assert verify_geometry(pa, pb, matches).inliers == 0
    assert verify_geometry(pa, pa + 5.0, matches).inliers == 60


def test_fundamental_matrix_on_a_3d_scene() -> None:
    rng = np.random.default_rng(1)
    points = np.column_stack([rng.uniform(-2, 2, 150), rng.uniform(-1.5, 1.5, 150), rng.uniform(4, 9, 150)])
    k = np.array([[500.0, 0, 240], [0, 500.0, 180], [0, 0, 1]])
    rvec = np.array([0.05, -0.2, 0.02])
    tvec = np.array([-0.8, 0.05, 0.1])
    pa = cv2.projectPoints(points, np.zeros(3), np.zeros(3), k, None)[0].reshape(-1, 2)
    pb = cv2.projectPoints(points, rvec, tvec, k, None)[0].reshape(-1, 2)
    pb[:30] = rng.uniform(0, 480, (30, 2))
    matches = np.stack([np.arange(150), np.arange(150)], axis=1)
    result = verify_geometry(pa, pb, matches, method="fundamental", threshold_px=1.0)
    assert result.inliers >= 118
    assert result.inlier_mask[:30].sum() <= 2  # an outlier may fall near its epipolar line by chance
    assert result.model is not None
    # Epipolar constraint x_b^T F x_a ~ 0 for true correspondences (in pixels via line distance).
    xa = np.hstack([pa[30:], np.ones((120, 1))])
    xb = np.hstack([pb[30:], np.ones((120, 1))])
    lines = xa @ result.model.T
    distance = np.abs(np.sum(xb * lines, axis=1)) / np.linalg.norm(lines[:, :2], axis=1)
    assert np.median(distance) < 0.5


@pytest.mark.parametrize("n", [0, 1, 3])
def test_too_few_matches_give_zero(n: int) -> None:
    pts = np.random.default_rng(0).uniform(0, 100, (10, 2))
    matches = np.stack([np.arange(n), np.arange(n)], axis=1)
    result = verify_geometry(pts, pts, matches)
    assert result.inliers == 0 and result.model is None and result.inlier_mask.shape == (n,)
    assert verify_geometry(pts, pts, matches[:7], method="fundamental").inliers == 0


def test_degenerate_points_give_zero_not_an_error() -> None:
    same = np.full((20, 2), 50.0)
    matches = np.stack([np.arange(20), np.arange(20)], axis=1)
    for method in ("homography", "fundamental"):
        for ransac in ("usac_magsac", "ransac"):
            result = verify_geometry(same, same, matches, method=method, ransac=ransac)  # type: ignore[arg-type]
            assert result.inliers == 0 and result.model is None


def test_bad_arguments_raise() -> None:
    pts = np.zeros((4, 2))
    with pytest.raises(ValueError):
        verify_geometry(pts, pts, np.zeros((4, 2), int), method="affine")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        verify_geometry(pts, pts, np.zeros((4, 2), int), ransac="lmeds")  # type: ignore[arg-type]
