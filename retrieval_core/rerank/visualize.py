"""Drawing match evidence: the query and a result side by side with lines between inlier keypoints."""

from __future__ import annotations

import cv2
import numpy as np


def draw_matches(
    query: np.ndarray, result: np.ndarray, points: np.ndarray, *, height: int = 480, max_lines: int = 200
) -> np.ndarray:
    """``(Hq, Wq, 3)`` and ``(Hr, Wr, 3)`` uint8 RGB images and ``(K, 4)`` pairs ``xq, yq, xr, yr`` in their
    pixels → one ``(height, Wq' + Wr', 3)`` uint8 RGB canvas with both scaled to ``height`` and K lines."""
    scale_q = height / query.shape[0]
    scale_r = height / result.shape[0]
    left = cv2.resize(query, (max(1, round(query.shape[1] * scale_q)), height), interpolation=cv2.INTER_AREA)
    right = cv2.resize(
        result, (max(1, round(result.shape[1] * scale_r)), height), interpolation=cv2.INTER_AREA
    )
    canvas = np.ascontiguousarray(np.hstack([left, right]))
    pairs = np.asarray(points, np.float64).reshape(-1, 4)[:max_lines]
    hues = np.linspace(0, 179, max(len(pairs), 1), endpoint=False).astype(np.uint8)
    colours = cv2.cvtColor(
        np.stack([hues, np.full_like(hues, 220), np.full_like(hues, 255)], 1)[None], cv2.COLOR_HSV2RGB
    )[0]
    offset = left.shape[1]
    for (xq, yq, xr, yr), colour in zip(pairs, colours, strict=False):
        start = (round(xq * scale_q), round(yq * scale_q))
        end = (round(xr * scale_r) + offset, round(yr * scale_r))
        bgr = tuple(int(c) for c in colour)
        cv2.line(canvas, start, end, bgr, 1, cv2.LINE_AA)
        cv2.circle(canvas, start, 3, bgr, 1, cv2.LINE_AA)
        cv2.circle(canvas, end, 3, bgr, 1, cv2.LINE_AA)
    return canvas
