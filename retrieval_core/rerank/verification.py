"""Geometric verification: how many tentative matches agree with one camera-consistent transform.

Counting RANSAC inliers instead of raw ratio-test matches (the thesis) is what separates "same building"
from "similar texture": chance matches between unrelated images do not agree on a homography.
MAGSAC++ (``cv2.USAC_MAGSAC``) is used by default, falling back to plain RANSAC when OpenCV lacks USAC.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import cv2
import numpy as np

__all__ = ["GeometryMethod", "GeometryResult", "RansacMethod", "min_matches_for", "verify_geometry"]

GeometryMethod = Literal["homography", "fundamental"]
RansacMethod = Literal["usac_magsac", "ransac"]

_MIN_MATCHES: dict[str, int] = {"homography": 4, "fundamental": 8}
_DEFAULT_THRESHOLD_PX: dict[str, float] = {"homography": 4.0, "fundamental": 1.5}


@dataclass(frozen=True, eq=False)
class GeometryResult:
    """inliers: count; inlier_mask: (M,) bool over the given matches; model: 3x3 float64 or None."""

    inliers: int
    inlier_mask: np.ndarray
    model: np.ndarray | None

    @classmethod
    def none(cls, n_matches: int) -> GeometryResult:
        return cls(0, np.zeros(n_matches, bool), None)


def min_matches_for(method: GeometryMethod) -> int:
    """Smallest number of matches the model can be estimated from."""
    return _MIN_MATCHES[method]


def verify_geometry(
    kps_a: np.ndarray,
    kps_b: np.ndarray,
    matches: np.ndarray,
    method: GeometryMethod = "homography",
    ransac: RansacMethod = "usac_magsac",
    threshold_px: float | None = None,
    max_iters: int = 2000,
    confidence: float = 0.999,
) -> GeometryResult:
    """Fit a homography (planar facades, distant scenes) or fundamental matrix (general 3-D) robustly.

    kps_a: (Na, 2), kps_b: (Nb, 2) float ``(x, y)``; matches: (M, 2) int indices ``(i_a, i_b)``.
    ``threshold_px``: max reprojection (homography, in b's pixels) or epipolar (fundamental) error of an
    inlier; default 4 px / 1.5 px. Fewer matches than the model needs, or a degenerate configuration, give
    0 inliers, never an exception. The model maps a to b (``x_b ~ H x_a``; ``x_b^T F x_a = 0``).
    """
    if method not in _MIN_MATCHES:
        raise ValueError(f"method must be one of {tuple(_MIN_MATCHES)}, got {method!r}")
    if ransac not in ("usac_magsac", "ransac"):
        raise ValueError(f"ransac must be 'usac_magsac' or 'ransac', got {ransac!r}")
    matches = np.asarray(matches).reshape(-1, 2)
    n = len(matches)
    if n < _MIN_MATCHES[method]:
        return GeometryResult.none(n)
    threshold = _DEFAULT_THRESHOLD_PX[method] if threshold_px is None else float(threshold_px)
    src = np.ascontiguousarray(kps_a[matches[:, 0]], np.float64)
    dst = np.ascontiguousarray(kps_b[matches[:, 1]], np.float64)
    flag = cv2.USAC_MAGSAC if ransac == "usac_magsac" and hasattr(cv2, "USAC_MAGSAC") else cv2.RANSAC
    try:
        if method == "homography":
            model, mask = cv2.findHomography(
                src, dst, flag, threshold, maxIters=max_iters, confidence=confidence
            )
        else:
            model, mask = cv2.findFundamentalMat(src, dst, flag, threshold, confidence, max_iters)
    except cv2.error:  # degenerate samples (all points collinear or coincident)
        return GeometryResult.none(n)
    if model is None or mask is None or model.shape != (3, 3):
        return GeometryResult.none(n)
    inlier_mask = mask.ravel().astype(bool)
    if method == "homography" and not _plausible_homography(model):
        return GeometryResult.none(n)
    return GeometryResult(int(inlier_mask.sum()), inlier_mask, model.astype(np.float64))


def _plausible_homography(h: np.ndarray, max_scale_change: float = 10.0) -> bool:
    """Reject collapsed or mirrored fits that random matches sometimes produce (photos do not flip)."""
    det = float(np.linalg.det(h[:2, :2])) / float(h[2, 2]) ** 2 if h[2, 2] != 0 else 0.0
    return 1.0 / max_scale_change**2 < det < max_scale_change**2
