"""SIFT / RootSIFT keypoints and descriptors for geometric re-ranking.

Descriptors are stored as uint8 (``DESCRIPTOR_SCALE`` = 512, clipped at 255): RootSIFT components lie in
[0, 1] with unit L2 norm and rarely exceed 0.5, so one byte per component keeps ~0.002 resolution (well below
SIFT's own noise) at a quarter of float32's size; plain SIFT from OpenCV is already integer 0..255 and is
stored losslessly. Matching works on ``descriptors_to_float`` (float32, rows L2-normalised), where the scale
cancels out.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

__all__ = [
    "DESCRIPTOR_SCALE",
    "LocalFeatures",
    "SiftConfig",
    "descriptors_to_float",
    "extract_sift",
]

DESCRIPTOR_SCALE = 512.0
"""RootSIFT value -> uint8 code factor (codes above 255, i.e. values above ~0.5, are clipped)."""


@dataclass(frozen=True)
class SiftConfig:
    """Settings of SIFT extraction; ``key`` names them so stored features are versioned by them.

    ``long_side``: images larger than this are shrunk (aspect kept) before detection; smaller ones are
    used as they are, since enlarging invents no detail and SIFT already doubles its base octave.
    ``contrast_threshold``: OpenCV's DoG contrast cut; lower finds more keypoints on flat, hazy photos.
    ``grid``: keypoints are picked by response with at most ``2 * max_keypoints / grid**2`` per cell of a
    ``grid`` x ``grid`` partition (then topped up by response), so one repetitive, high-contrast region
    (windows, tiles, foliage) cannot take the whole budget with descriptors that never match uniquely.
    0 = plain strongest-first.
    ``upright``: one keypoint per location with orientation 0 (no rotation invariance; better for upright
    photos such as street scenes, where orientation estimates only add noise).
    Queries may use fewer keypoints than the index (``dataclasses.replace(cfg, max_keypoints=500)``):
    descriptors stay compatible and matching cost halves.
    """

    max_keypoints: int = 1000
    long_side: int = 640
    root_sift: bool = True
    contrast_threshold: float = 0.04
    edge_threshold: float = 10.0
    n_octave_layers: int = 3
    sigma: float = 1.6
    grid: int = 8
    upright: bool = False

    def __post_init__(self) -> None:
        if self.max_keypoints <= 0:
            raise ValueError(f"max_keypoints must be positive, got {self.max_keypoints}")
        if self.long_side < 16:
            raise ValueError(f"long_side must be at least 16, got {self.long_side}")
        if self.grid < 0:
            raise ValueError(f"grid must be >= 0, got {self.grid}")

    @property
    def key(self) -> str:
        """Stable, filesystem-safe name of the settings: ``rootsift-n1000-l640-c0.04-e10-o3-s1.6-g8``."""
        kind = "rootsift" if self.root_sift else "sift"
        return (
            f"{kind}-n{self.max_keypoints}-l{self.long_side}-c{self.contrast_threshold:g}"
            f"-e{self.edge_threshold:g}-o{self.n_octave_layers}-s{self.sigma:g}-g{self.grid}"
            + ("-u" if self.upright else "")
        )


@dataclass(frozen=True, eq=False)
class LocalFeatures:
    """Keypoints and descriptors of one image.

    keypoints: (N, 2) float32 ``(x, y)`` in pixels of the ORIGINAL image (draw matches on it directly).
    descriptors: (N, 128) uint8 codes (see module docstring; features read from a compact store hold the
        nearest of 16 or 4 levels, see ``retrieval_core.features.compact``); match them through
        ``descriptors_to_float``.
    image_size: ``(width, height)`` of the original image.
    pixel_scale: original pixels per pixel of the image SIFT saw (>= 1); keypoint localisation error, and
        so any geometric threshold, grows with it.
    scales, angles: (N,) float32 keypoint size (original pixels) and orientation (degrees), or None.
    """

    keypoints: np.ndarray
    descriptors: np.ndarray
    image_size: tuple[int, int]
    pixel_scale: float = 1.0
    scales: np.ndarray | None = None
    angles: np.ndarray | None = None

    def __post_init__(self) -> None:
        n = len(self.keypoints)
        if self.keypoints.shape != (n, 2) or self.descriptors.shape != (n, 128):
            raise ValueError(
                f"keypoints (N, 2) and descriptors (N, 128) must agree, got {self.keypoints.shape} "
                f"and {self.descriptors.shape}"
            )
        for name in ("scales", "angles"):
            extra = getattr(self, name)
            if extra is not None and extra.shape != (n,):
                raise ValueError(f"{name} must be ({n},), got {extra.shape}")

    def __len__(self) -> int:
        return len(self.keypoints)

    @classmethod
    def empty(cls, image_size: tuple[int, int], pixel_scale: float = 1.0) -> LocalFeatures:
        """Features of an image where nothing was detected (flat, blank, tiny)."""
        return cls(
            keypoints=np.zeros((0, 2), np.float32),
            descriptors=np.zeros((0, 128), np.uint8),
            image_size=image_size,
            pixel_scale=pixel_scale,
            scales=np.zeros(0, np.float32),
            angles=np.zeros(0, np.float32),
        )


def descriptors_to_float(descriptors: np.ndarray) -> np.ndarray:
    """(N, 128) uint8 or float -> (N, 128) float32 with unit-L2 rows (all-zero rows stay zero)."""
    out = np.asarray(descriptors, dtype=np.float32)
    norms = np.linalg.norm(out, axis=1, keepdims=True)
    return out / np.maximum(norms, 1e-12)


def extract_sift(image: np.ndarray, cfg: SiftConfig | None = None) -> LocalFeatures:
    """Detect up to ``cfg.max_keypoints`` SIFT keypoints of an (H, W, 3) RGB or (H, W) gray uint8 image.

    Keypoints are the strongest by DoG response, spread over the image (``cfg.grid``), sorted strongest
    first. An image with none (blank, tiny) gives empty arrays, not an error.
    """
    cfg = cfg or SiftConfig()
    gray = _to_gray(image)
    height, width = gray.shape
    factor = min(1.0, cfg.long_side / max(height, width))
    if factor < 1.0:
        size = (max(1, round(width * factor)), max(1, round(height * factor)))
        gray = cv2.resize(gray, size, interpolation=cv2.INTER_AREA)
    # Exact per-axis factors after rounding, so keypoints map back without drift.
    sx, sy = width / gray.shape[1], height / gray.shape[0]
    pixel_scale = max(sx, sy)

    sift = cv2.SIFT.create(
        nfeatures=0 if cfg.grid or cfg.upright else cfg.max_keypoints,
        nOctaveLayers=cfg.n_octave_layers,
        contrastThreshold=cfg.contrast_threshold,
        edgeThreshold=cfg.edge_threshold,
        sigma=cfg.sigma,
    )
    if cfg.grid or cfg.upright:
        # Detect all, pick a spatially spread subset, describe only those (~+15 % time).
        detected = sift.detect(gray, None)
        if cfg.upright:
            detected = _upright(detected)
        if cfg.grid:
            chosen = _spread(detected, gray.shape, cfg.grid, cfg.max_keypoints)
        else:
            chosen = np.argsort([-kp.response for kp in detected], kind="stable")[
                : cfg.max_keypoints
            ].tolist()
        keypoints, descriptors = sift.compute(gray, [detected[i] for i in chosen]) if chosen else ((), None)
    else:
        keypoints, descriptors = sift.detectAndCompute(gray, None)
    if not keypoints or descriptors is None:
        return LocalFeatures.empty((width, height), pixel_scale)

    # Strongest first; retainBest may keep ties beyond nfeatures, so cut to max_keypoints.
    order = np.argsort([-kp.response for kp in keypoints], kind="stable")[: cfg.max_keypoints]
    points = np.array([keypoints[i].pt for i in order], np.float32).reshape(-1, 2)
    # Pixel centres: resized pixel (x + 0.5) covers original (x + 0.5) * s.
    points = (points + 0.5) * np.array([sx, sy], np.float32) - 0.5
    scales = np.array([keypoints[i].size for i in order], np.float32) * np.float32(pixel_scale)
    angles = np.array([keypoints[i].angle for i in order], np.float32)
    return LocalFeatures(
        keypoints=points,
        descriptors=_encode(descriptors[order], cfg.root_sift),
        image_size=(width, height),
        pixel_scale=pixel_scale,
        scales=scales,
        angles=angles,
    )


def _upright(keypoints: Sequence[cv2.KeyPoint]) -> list[cv2.KeyPoint]:
    """One keypoint per location and scale (SIFT repeats a point once per dominant orientation), with its
    orientation fixed at 0: upright descriptors match better when photos are not rotated (street scenes)."""
    seen: dict[tuple[float, float, float], cv2.KeyPoint] = {}
    for kp in keypoints:
        key = (round(kp.pt[0], 2), round(kp.pt[1], 2), round(kp.size, 2))
        if key not in seen or kp.response > seen[key].response:
            seen[key] = kp
    return [
        cv2.KeyPoint(kp.pt[0], kp.pt[1], kp.size, 0.0, kp.response, kp.octave, kp.class_id)
        for kp in seen.values()
    ]


def _spread(keypoints: Sequence[cv2.KeyPoint], shape: tuple[int, ...], grid: int, budget: int) -> list[int]:
    """Indices of up to ``budget`` keypoints by response, at most ``2 * budget / grid**2`` per grid cell
    until the strongest of every cell are in, then topped up by response."""
    if not keypoints:
        return []
    height, width = shape[:2]
    points = np.array([kp.pt for kp in keypoints], np.float32)
    response = np.array([kp.response for kp in keypoints], np.float32)
    order = np.argsort(-response, kind="stable")
    col = np.minimum((points[order, 0] * grid / width).astype(int), grid - 1)
    row = np.minimum((points[order, 1] * grid / height).astype(int), grid - 1)
    cell = row * grid + col
    # Rank of each keypoint among the stronger ones of its cell (stable sort keeps response order).
    by_cell = np.argsort(cell, kind="stable")
    sorted_cells = cell[by_cell]
    rank_in_cell = np.empty(len(cell), np.int64)
    rank_in_cell[by_cell] = np.arange(len(cell)) - np.searchsorted(sorted_cells, sorted_cells, side="left")
    cap = max(1, -(-2 * budget // (grid * grid)))
    first = order[rank_in_cell < cap][:budget]
    rest = order[rank_in_cell >= cap][: budget - len(first)]
    return np.concatenate([first, rest]).tolist()


def _encode(descriptors: np.ndarray, root_sift: bool) -> np.ndarray:
    """OpenCV float SIFT (N, 128) -> stored uint8 codes (RootSIFT: L1-normalise, sqrt, x512)."""
    if not root_sift:
        return np.clip(np.rint(descriptors), 0, 255).astype(np.uint8)
    l1 = np.maximum(descriptors.sum(axis=1, keepdims=True), 1e-12)
    root = np.sqrt(descriptors / l1)
    return np.clip(np.rint(root * DESCRIPTOR_SCALE), 0, 255).astype(np.uint8)


def _to_gray(image: np.ndarray) -> np.ndarray:
    if image.dtype != np.uint8:
        raise ValueError(f"image must be uint8, got {image.dtype}")
    if image.ndim == 2:
        gray = image
    elif image.ndim == 3 and image.shape[2] == 3:
        gray = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
    elif image.ndim == 3 and image.shape[2] == 4:
        gray = cv2.cvtColor(image, cv2.COLOR_RGBA2GRAY)
    elif image.ndim == 3 and image.shape[2] == 1:
        gray = image[..., 0]
    else:
        raise ValueError(f"image must be (H, W), (H, W, 3) or (H, W, 4), got {image.shape}")
    if gray.shape[0] == 0 or gray.shape[1] == 0:
        raise ValueError(f"image is empty: {image.shape}")
    return np.ascontiguousarray(gray)
