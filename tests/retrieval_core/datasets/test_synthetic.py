from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from retrieval_core.datasets import (
    make_scene,
    read_collection,
    read_collection_report,
    render_view,
    visible_fraction,
    write_collection,
)

SIZE = (120, 160)


def _gray(image: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)


def test_scene_shape_dtype_and_determinism() -> None:
    scene = make_scene(3, SIZE)
    assert scene.shape == (*SIZE, 3) and scene.dtype == np.uint8
    assert np.array_equal(scene, make_scene(3, SIZE))
    assert scene.std() > 30  # textured, not flat


def test_different_seeds_give_clearly_different_scenes() -> None:
    scenes = [make_scene(seed, SIZE).astype(np.float32) for seed in range(4)]
    for i in range(len(scenes)):
        for j in range(i + 1, len(scenes)):
            assert np.abs(scenes[i] - scenes[j]).mean() > 25
    colour_means = np.array([scene.reshape(-1, 3).mean(axis=0) for scene in scenes])
    assert np.ptp(colour_means, axis=0).max() > 20  # their own palettes, not one palette reshuffled


def test_scene_has_many_sift_keypoints() -> None:
    keypoints = cv2.SIFT_create().detect(_gray(make_scene(0, (240, 320))), None)
    assert len(keypoints) > 300


def test_too_small_scene_is_refused() -> None:
    with pytest.raises(ValueError, match="too small"):
        make_scene(0, (8, 8))


def test_views_are_deterministic_per_seed_and_differ_between_draws() -> None:
    scene = make_scene(1, SIZE)
    view_a, h_a = render_view(scene, np.random.default_rng(5), SIZE)
    view_b, h_b = render_view(scene, np.random.default_rng(5), SIZE)
    assert np.array_equal(view_a, view_b) and np.array_equal(h_a, h_b)
    rng = np.random.default_rng(5)
    first, second = render_view(scene, rng, SIZE), render_view(scene, rng, SIZE)
    assert not np.allclose(first[1], second[1])
    assert view_a.shape == (*SIZE, 3) and view_a.dtype == np.uint8
    assert h_a.shape == (3, 3) and h_a.dtype == np.float64


def test_homography_maps_scene_points_to_view_points() -> None:
    """A dot added to the scene must appear where H sends it (same viewpoint drawn with and without it)."""
    rng = np.random.default_rng(0)
    scene = make_scene(8, SIZE)
    checked = 0
    for seed in range(8):
        x, y = int(rng.integers(30, SIZE[1] - 30)), int(rng.integers(25, SIZE[0] - 25))
        dotted = scene.copy()
        cv2.circle(dotted, (x, y), 2, (255, 255, 255), -1)
        plain, homography = render_view(scene, np.random.default_rng(seed), SIZE, photometric=False)
        view, same = render_view(dotted, np.random.default_rng(seed), SIZE, photometric=False)
        assert np.array_equal(homography, same)
        projected = homography @ np.array([x, y, 1.0])
        expected = projected[:2] / projected[2]
        if not (3 <= expected[0] <= SIZE[1] - 4 and 3 <= expected[1] <= SIZE[0] - 4):
            continue
        diff = np.abs(view.astype(np.float32) - plain.astype(np.float32)).sum(axis=2)
        rows, cols = np.nonzero(diff > 0.3 * diff.max())
        weights = diff[rows, cols]
        centroid = np.array([np.average(cols, weights=weights), np.average(rows, weights=weights)])
        assert np.linalg.norm(centroid - expected) < 1.0
        checked += 1
    assert checked >= 5


def test_homography_agrees_with_one_estimated_from_sift_matches() -> None:
    scene = make_scene(2, (240, 320))
    view, homography = render_view(scene, np.random.default_rng(1), (240, 320))
    sift = cv2.SIFT_create()
    kp_s, des_s = sift.detectAndCompute(_gray(scene), None)
    kp_v, des_v = sift.detectAndCompute(_gray(view), None)
    pairs = cv2.BFMatcher().knnMatch(des_s, des_v, k=2)
    good = [m for m, n in pairs if m.distance < 0.75 * n.distance]
    assert len(good) > 40
    src = np.float32([kp_s[m.queryIdx].pt for m in good])
    dst = np.float32([kp_v[m.trainIdx].pt for m in good])
    estimated, inliers = cv2.findHomography(src, dst, cv2.RANSAC, 3.0)
    assert inliers.sum() > 30
    grid = np.float32([[x, y] for x in (40, 160, 280) for y in (40, 120, 200)])[:, None]
    gap = cv2.perspectiveTransform(grid, estimated) - cv2.perspectiveTransform(grid, homography)
    assert np.abs(gap).max() < 3.0


def test_views_keep_most_of_the_scene_visible() -> None:
    scene = make_scene(4, SIZE)
    rng = np.random.default_rng(2)
    for _ in range(10):
        _, homography = render_view(scene, rng, SIZE)
        assert visible_fraction(homography, SIZE, SIZE) >= 0.65


def test_photometric_changes_pixels_but_not_geometry() -> None:
    scene = make_scene(6, SIZE)
    plain, h_plain = render_view(scene, np.random.default_rng(9), SIZE, photometric=False)
    changed, h_changed = render_view(scene, np.random.default_rng(9), SIZE, photometric=True)
    assert np.array_equal(h_plain, h_changed)
    assert np.abs(plain.astype(np.float32) - changed.astype(np.float32)).mean() > 3


def test_render_view_rejects_non_rgb_input() -> None:
    with pytest.raises(ValueError, match="uint8"):
        render_view(np.zeros(SIZE, np.uint8), np.random.default_rng(0), SIZE)


@pytest.mark.parametrize("layout", ["folders", "labels_csv"])
def test_write_collection_round_trips_through_read_collection(tmp_path: Path, layout: str) -> None:
    paths = write_collection(tmp_path, 3, 2, seed=7, layout=layout, image_size=(64, 80))  # type: ignore[arg-type]
    assert len(paths) == 6 and all(path.is_file() for path in paths)
    result = read_collection_report(tmp_path)
    assert result.layout == layout
    assert result.skipped == ()
    assert [item.path for item in result.items] == sorted(path.resolve() for path in paths)
    assert result.landmarks == ("landmark_000", "landmark_001", "landmark_002")
    assert all(item.landmark == item.relpath.split("/")[0] for item in result.items)


def test_write_collection_marks_queries_and_is_deterministic(tmp_path: Path) -> None:
    first = write_collection(
        tmp_path / "a", 2, 3, seed=1, layout="labels_csv", image_size=(48, 64), queries_per_landmark=1
    )
    second = write_collection(
        tmp_path / "b", 2, 3, seed=1, layout="labels_csv", image_size=(48, 64), queries_per_landmark=1
    )
    assert [p.read_bytes() for p in first] == [p.read_bytes() for p in second]
    splits = {item.relpath: item.split for item in read_collection(tmp_path / "a")}
    assert splits["landmark_000/view_000.jpg"] == "query"
    assert splits["landmark_001/view_000.jpg"] == "query"
    assert sum(split == "query" for split in splits.values()) == 2
    other = write_collection(tmp_path / "c", 2, 3, seed=2, image_size=(48, 64))
    assert first[0].read_bytes() != other[0].read_bytes()


def test_write_collection_refuses_queries_in_folders_layout(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="labels_csv"):
        write_collection(tmp_path, 1, 2, seed=0, layout="folders", queries_per_landmark=1)
