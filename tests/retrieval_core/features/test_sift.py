from __future__ import annotations

import re

import cv2
import numpy as np
import pytest

from retrieval_core.datasets.synthetic import make_scene, render_view
from retrieval_core.features.sift import (
    DESCRIPTOR_SCALE,
    LocalFeatures,
    SiftConfig,
    descriptors_to_float,
    extract_sift,
)


@pytest.fixture(scope="module")
def view() -> np.ndarray:
    image, _ = render_view(make_scene(1, (360, 480)), np.random.default_rng(0), out_size=(360, 480))
    return image


def test_shapes_and_types(view: np.ndarray) -> None:
    feats = extract_sift(view, SiftConfig(max_keypoints=500))
    assert 200 < len(feats) <= 500
    assert feats.keypoints.shape == (len(feats), 2) and feats.keypoints.dtype == np.float32
    assert feats.descriptors.shape == (len(feats), 128) and feats.descriptors.dtype == np.uint8
    assert feats.image_size == (480, 360)
    assert feats.pixel_scale == 1.0  # smaller than long_side: used as is
    assert feats.scales is not None and feats.angles is not None and feats.scales.shape == (len(feats),)
    x, y = feats.keypoints.T
    assert x.min() >= -0.5 and x.max() <= 479.5 and y.min() >= -0.5 and y.max() <= 359.5


def test_root_sift_codes_decode_to_unit_vectors(view: np.ndarray) -> None:
    feats = extract_sift(view, SiftConfig(max_keypoints=300))
    decoded = feats.descriptors.astype(np.float64) / DESCRIPTOR_SCALE
    norms = np.linalg.norm(decoded, axis=1)
    assert np.all(np.abs(norms - 1.0) < 0.03)  # quantisation and rare clipping cost < 3 %
    assert np.allclose(np.linalg.norm(descriptors_to_float(feats.descriptors), axis=1), 1.0, atol=1e-5)


def test_root_sift_is_sqrt_of_l1_normalised_sift(view: np.ndarray) -> None:
    root = extract_sift(view, SiftConfig(max_keypoints=200))
    plain = extract_sift(view, SiftConfig(max_keypoints=200, root_sift=False))
    np.testing.assert_array_equal(root.keypoints, plain.keypoints)
    counts = plain.descriptors.astype(np.float64)
    expected = np.sqrt(counts / counts.sum(axis=1, keepdims=True))
    assert np.abs(descriptors_to_float(root.descriptors) - expected).max() < 0.02


def test_keypoints_are_in_original_pixels(view: np.ndarray) -> None:
    """A 2x enlarged copy is shrunk back to 640 px for detection; its keypoints must come out 2x larger."""
    big = cv2.resize(view, (960, 720), interpolation=cv2.INTER_CUBIC)
    small = extract_sift(view, SiftConfig(max_keypoints=400, long_side=480))
    large = extract_sift(big, SiftConfig(max_keypoints=400, long_side=480))
    assert large.image_size == (960, 720) and large.pixel_scale == pytest.approx(2.0)
    mapped = (large.keypoints + 0.5) / 2.0 - 0.5
    distance = np.linalg.norm(mapped[:, None, :] - small.keypoints[None, :, :], axis=2).min(axis=1)
    assert np.median(distance) < 0.1  # ~0.35 without the pixel-centre shift
    assert large.scales is not None and small.scales is not None
    assert np.median(large.scales) == pytest.approx(2 * np.median(small.scales), rel=0.15)


def test_grid_spreads_keypoints_over_the_image(view: np.ndarray) -> None:
    def per_cell(feats: LocalFeatures) -> np.ndarray:
        cells = (feats.keypoints // np.array([480 / 8, 360 / 8])).astype(int).clip(0, 7)
        return np.bincount(cells[:, 1] * 8 + cells[:, 0], minlength=64)

    strongest = per_cell(extract_sift(view, SiftConfig(max_keypoints=320, grid=0)))
    spread = per_cell(extract_sift(view, SiftConfig(max_keypoints=320, grid=8)))
    assert spread.sum() == strongest.sum() == 320
    assert spread.max() <= 10 < strongest.max()  # cap 2 * 320 / 64 = 10 per cell
    assert (spread > 0).sum() > (strongest > 0).sum()


def test_gray_and_rgb_inputs_agree(view: np.ndarray) -> None:
    gray = cv2.cvtColor(view, cv2.COLOR_RGB2GRAY)
    a = extract_sift(view, SiftConfig(max_keypoints=200))
    b = extract_sift(gray, SiftConfig(max_keypoints=200))
    np.testing.assert_array_equal(a.keypoints, b.keypoints)
    np.testing.assert_array_equal(a.descriptors, b.descriptors)


def test_max_keypoints_is_a_hard_cap(view: np.ndarray) -> None:
    assert len(extract_sift(view, SiftConfig(max_keypoints=50))) <= 50


@pytest.mark.parametrize("shape", [(300, 400), (300, 400, 3), (8, 8)])
def test_no_keypoints_gives_empty_arrays(shape: tuple[int, ...]) -> None:
    feats = extract_sift(np.full(shape, 128, np.uint8))
    assert len(feats) == 0
    assert feats.keypoints.shape == (0, 2) and feats.descriptors.shape == (0, 128)
    assert feats.image_size == (shape[1], shape[0])


def test_bad_inputs_raise() -> None:
    with pytest.raises(ValueError, match="uint8"):
        extract_sift(np.zeros((50, 50), np.float32))
    with pytest.raises(ValueError, match="must be"):
        extract_sift(np.zeros((50, 50, 2), np.uint8))
    with pytest.raises(ValueError):
        LocalFeatures(np.zeros((3, 2), np.float32), np.zeros((2, 128), np.uint8), (10, 10))


def test_config_key_names_every_setting() -> None:
    base = SiftConfig()
    assert re.fullmatch(r"[A-Za-z0-9_.=+-]+", base.key)
    assert base.key == SiftConfig().key
    variants = [
        SiftConfig(max_keypoints=500),
        SiftConfig(long_side=1024),
        SiftConfig(root_sift=False),
        SiftConfig(contrast_threshold=0.02),
        SiftConfig(edge_threshold=12),
    ]
    keys = {v.key for v in variants}
    assert len(keys) == len(variants) and base.key not in keys


def test_upright_sift_keeps_one_keypoint_per_location_with_orientation_zero() -> None:
    view, _ = render_view(make_scene(3, (300, 400)), np.random.default_rng(0), (300, 400))
    rotated = extract_sift(view, SiftConfig(max_keypoints=400))
    upright = extract_sift(view, SiftConfig(max_keypoints=400, upright=True))
    assert len(upright) == 400 and upright.angles is not None and not upright.angles.any()
    assert rotated.angles is not None and rotated.angles.any()
    locations = {
        (round(float(x), 1), round(float(y), 1), round(float(s), 1))
        for (x, y), s in zip(upright.keypoints, upright.scales, strict=True)
    }
    assert len(locations) == len(upright)
    assert SiftConfig(upright=True).key.endswith("-u") and not SiftConfig().key.endswith("-u")
