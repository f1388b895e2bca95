"""Synthetic landmarks: textured planar scenes seen under random homographies and lighting.

They let tests and benchmarks run anywhere with a known ground truth: every view of a scene is the same
"landmark", and the homography that produced it is returned, so local-feature matching and geometric
verification can be checked exactly. Everything is deterministic for a seed.

Coordinates are pixel ``(x, y) = (column, row)``, as OpenCV uses them.
"""

from __future__ import annotations

import csv
import string
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import cv2
import numpy as np
from PIL import Image

Size = tuple[int, int]
"""``(height, width)`` in pixels."""

_FONTS = (
    cv2.FONT_HERSHEY_SIMPLEX,
    cv2.FONT_HERSHEY_DUPLEX,
    cv2.FONT_HERSHEY_COMPLEX,
    cv2.FONT_HERSHEY_TRIPLEX,
    cv2.FONT_HERSHEY_SCRIPT_SIMPLEX,
)


def make_scene(seed: int, size: Size = (480, 640)) -> np.ndarray:
    """A richly textured planar scene ``(H, W, 3)`` uint8 RGB, distinct for every seed.

    Each seed gets its own palette and layout of shapes, stripes, lines and text-like marks over a
    blurred-noise background, so SIFT finds many corners and a CNN embedding tells scenes apart.
    """
    height, width = size
    if height < 16 or width < 16:
        raise ValueError(f"scene size {size} is too small; need at least 16x16")
    rng = np.random.default_rng(seed)
    palette = _palette(rng, int(rng.integers(5, 9)))
    unit = min(height, width)

    # Low-frequency colour field from the palette, plus mid-frequency noise texture.
    grid = palette[rng.integers(0, len(palette), size=(max(2, height // 48), max(2, width // 48)))]
    canvas = cv2.resize(grid.astype(np.float32), (width, height), interpolation=cv2.INTER_CUBIC)
    texture = cv2.GaussianBlur(rng.normal(0.0, 1.0, (height, width)).astype(np.float32), (0, 0), 2.0)
    canvas += (texture / (texture.std() + 1e-6) * 22.0)[..., None]
    canvas = np.clip(canvas, 0, 255).astype(np.uint8)

    for _ in range(int(rng.integers(25, 45))):
        _draw_shape(canvas, rng, palette, unit)
    for _ in range(int(rng.integers(12, 25))):
        p1, p2 = _point(rng, width, height), _point(rng, width, height)
        cv2.line(canvas, p1, p2, _colour(rng, palette), int(rng.integers(1, 4)), cv2.LINE_AA)
    for _ in range(int(rng.integers(8, 16))):
        _draw_text(canvas, rng, palette, unit)

    fine = cv2.GaussianBlur(rng.normal(0.0, 10.0, (height, width, 3)).astype(np.float32), (0, 0), 0.7)
    return np.clip(canvas.astype(np.float32) + fine, 0, 255).astype(np.uint8)


def render_view(
    scene: np.ndarray,
    rng: np.random.Generator,
    out_size: Size = (480, 640),
    max_perspective: float = 0.12,
    photometric: bool = True,
    max_rotation_deg: float = 25.0,
    scale_range: tuple[float, float] = (0.75, 1.1),
    min_visible: float = 0.65,
) -> tuple[np.ndarray, np.ndarray]:
    """Photograph ``scene`` from a random viewpoint: returns ``(view, H)``.

    ``view`` is ``(*out_size, 3)`` uint8 RGB; ``H`` (3x3 float64) maps scene pixel ``(x, y, 1)`` to view
    pixel coordinates. The viewpoint is a rotation, a scale relative to "scene fits the view", corner
    jitter of up to ``max_perspective`` of the scene size (perspective) and a shift, resampled until at
    least ``min_visible`` of the scene lies inside the view. ``photometric`` adds brightness, contrast,
    gamma and colour changes, mild blur and sensor noise.
    """
    if scene.ndim != 3 or scene.shape[2] != 3 or scene.dtype != np.uint8:
        raise ValueError(f"scene must be (H, W, 3) uint8, got {scene.shape} {scene.dtype}")
    out_h, out_w = out_size
    homography = _sample_homography(
        rng, scene.shape[:2], out_size, max_perspective, max_rotation_deg, scale_range, min_visible
    )
    warped = cv2.warpPerspective(scene, homography, (out_w, out_h), flags=cv2.INTER_LINEAR)
    mask = cv2.warpPerspective(
        np.full(scene.shape[:2], 255, np.uint8), homography, (out_w, out_h), flags=cv2.INTER_LINEAR
    )
    background = _background(rng, out_size)
    alpha = (mask.astype(np.float32) / 255.0)[..., None]
    view = warped.astype(np.float32) * alpha + background * (1.0 - alpha)
    if photometric:
        view = _photometric(view, rng)
    return np.clip(np.rint(view), 0, 255).astype(np.uint8), homography


def write_collection(
    root: Path,
    n_landmarks: int,
    views_per_landmark: int,
    seed: int,
    layout: Literal["folders", "labels_csv"] = "folders",
    image_size: Size = (240, 320),
    queries_per_landmark: int = 0,
) -> list[Path]:
    """Write ``n_landmarks`` scenes x ``views_per_landmark`` JPEG views under ``root``; return their paths.

    Files are ``root/landmark_NNN/view_NNN.jpg``. With ``layout="labels_csv"`` a ``labels.csv`` is written
    too, the first ``queries_per_landmark`` views of each landmark having ``split=query`` (others empty).
    """
    if layout not in ("folders", "labels_csv"):
        raise ValueError(f"layout must be 'folders' or 'labels_csv', got {layout!r}")
    if queries_per_landmark and layout != "labels_csv":
        raise ValueError("queries_per_landmark needs layout='labels_csv': folders cannot mark queries")
    if not 0 <= queries_per_landmark <= views_per_landmark:
        raise ValueError("queries_per_landmark must be between 0 and views_per_landmark")
    root = Path(root)
    paths: list[Path] = []
    rows: list[tuple[str, str, str]] = []
    for index in range(n_landmarks):
        landmark = f"landmark_{index:03d}"
        scene_seed = int(np.random.SeedSequence([seed, index]).generate_state(1)[0])
        scene = make_scene(scene_seed, image_size)
        rng = np.random.default_rng([seed, index, 1])
        (root / landmark).mkdir(parents=True, exist_ok=True)
        for view_index in range(views_per_landmark):
            view, _ = render_view(scene, rng, out_size=image_size)
            relpath = f"{landmark}/view_{view_index:03d}.jpg"
            Image.fromarray(view).save(root / relpath, format="JPEG", quality=90)
            paths.append(root / relpath)
            rows.append((relpath, landmark, "query" if view_index < queries_per_landmark else ""))
    if layout == "labels_csv":
        with (root / "labels.csv").open("w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow(("image", "landmark", "split"))
            writer.writerows(rows)
    return paths


def visible_fraction(homography: np.ndarray, scene_size: Size, out_size: Size, steps: int = 16) -> float:
    """Fraction of a ``steps x steps`` grid of scene points that ``homography`` puts inside the view."""
    height, width = scene_size
    xs, ys = np.meshgrid(np.linspace(0, width - 1, steps), np.linspace(0, height - 1, steps))
    points = np.stack([xs.ravel(), ys.ravel(), np.ones(xs.size)])
    projected = homography @ points
    depth = projected[2]
    with np.errstate(divide="ignore", invalid="ignore"):
        x, y = projected[0] / depth, projected[1] / depth
    inside = (depth > 0) & (x >= 0) & (x <= out_size[1] - 1) & (y >= 0) & (y <= out_size[0] - 1)
    return float(inside.mean())


def _sample_homography(
    rng: np.random.Generator,
    scene_size: Size,
    out_size: Size,
    max_perspective: float,
    max_rotation_deg: float,
    scale_range: tuple[float, float],
    min_visible: float,
    attempts: int = 50,
) -> np.ndarray:
    height, width = scene_size
    out_h, out_w = out_size
    src = np.array([[0, 0], [width - 1, 0], [width - 1, height - 1], [0, height - 1]], np.float64)
    centred = src - [(width - 1) / 2, (height - 1) / 2]
    fit = min(out_w / width, out_h / height)
    best: np.ndarray = np.eye(3)
    best_visible = -1.0
    for _ in range(attempts):
        scale = fit * rng.uniform(*scale_range)
        angle = np.deg2rad(rng.uniform(-max_rotation_deg, max_rotation_deg))
        rotation = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
        jitter = rng.uniform(-1.0, 1.0, (4, 2)) * max_perspective * np.array([width, height])
        shift = np.array([(out_w - 1) / 2, (out_h - 1) / 2]) + rng.uniform(-0.08, 0.08, 2) * [out_w, out_h]
        dst = (scale * (centred + jitter)) @ rotation.T + shift
        homography = cv2.getPerspectiveTransform(src.astype(np.float32), dst.astype(np.float32))
        visible = visible_fraction(homography, scene_size, out_size)
        if visible >= min_visible:
            return homography.astype(np.float64)
        if visible > best_visible:
            best, best_visible = homography, visible
    return np.asarray(best, np.float64)


def _background(rng: np.random.Generator, size: Size) -> np.ndarray:
    """Plain, softly textured surroundings so the scene border is not a hard black frame."""
    colour = rng.uniform(40, 215, 3).astype(np.float32)
    noise = cv2.GaussianBlur(rng.normal(0.0, 12.0, size).astype(np.float32), (0, 0), 6.0)
    return colour[None, None, :] + noise[..., None]


def _photometric(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    gains = rng.uniform(0.9, 1.1, 3).astype(np.float32)
    contrast, brightness = rng.uniform(0.7, 1.3), rng.uniform(-30, 30)
    gamma = float(np.exp(rng.uniform(-0.3, 0.3)))
    image = (image * gains - 128.0) * contrast + 128.0 + brightness
    image = 255.0 * (np.clip(image, 0, 255) / 255.0) ** gamma
    sigma = rng.uniform(0.0, 1.0)
    if sigma > 0.3:
        image = cv2.GaussianBlur(image.astype(np.float32), (0, 0), sigma)
    return image + rng.normal(0.0, rng.uniform(0.0, 4.0), image.shape)


def _palette(rng: np.random.Generator, n: int) -> np.ndarray:
    """``n`` RGB colours around a seed-specific hue, with a few contrasting accents."""
    base_hue = rng.uniform(0, 180)
    hues = (base_hue + rng.normal(0, 25, n) + np.where(rng.random(n) < 0.3, 90, 0)) % 180
    sats = rng.uniform(80, 255, n)
    vals = rng.uniform(60, 255, n)
    hsv = np.stack([hues, sats, vals], axis=1).astype(np.uint8)[None]
    return cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)[0].astype(np.float32)


def _colour(rng: np.random.Generator, palette: np.ndarray) -> tuple[int, int, int]:
    base = palette[rng.integers(0, len(palette))] + rng.normal(0, 15, 3)
    if rng.random() < 0.2:  # dark or light accents give strong edges whatever the palette
        base = np.full(3, 20.0 if rng.random() < 0.5 else 235.0) + rng.normal(0, 10, 3)
    r, g, b = (int(c) for c in np.clip(base, 0, 255))
    return r, g, b


def _point(rng: np.random.Generator, width: int, height: int) -> tuple[int, int]:
    return int(rng.integers(0, width)), int(rng.integers(0, height))


def _draw_shape(canvas: np.ndarray, rng: np.random.Generator, palette: np.ndarray, unit: int) -> None:
    height, width = canvas.shape[:2]
    centre = _point(rng, width, height)
    extent = max(3, int(unit * rng.uniform(0.03, 0.18)))
    colour = _colour(rng, palette)
    kind = rng.integers(0, 5)
    if kind == 0:
        x, y = centre
        cv2.rectangle(canvas, (x - extent, y - extent // 2), (x + extent, y + extent // 2), colour, -1)
    elif kind == 1:
        cv2.circle(canvas, centre, extent, colour, -1, cv2.LINE_AA)
    elif kind == 2:
        axes = (extent, max(2, int(extent * rng.uniform(0.3, 0.9))))
        cv2.ellipse(canvas, centre, axes, float(rng.uniform(0, 180)), 0, 360, colour, -1, cv2.LINE_AA)
    elif kind == 3:
        corners = np.array(centre) + rng.integers(-extent, extent + 1, (int(rng.integers(3, 7)), 2))
        cv2.fillPoly(canvas, [corners.astype(np.int32)], colour, cv2.LINE_AA)
    else:  # striped or checkered patch
        _draw_pattern(canvas, rng, centre, extent, colour, _colour(rng, palette))


def _draw_pattern(
    canvas: np.ndarray,
    rng: np.random.Generator,
    centre: tuple[int, int],
    extent: int,
    colour: Sequence[int],
    other: Sequence[int],
) -> None:
    height, width = canvas.shape[:2]
    x0, y0 = max(0, centre[0] - extent), max(0, centre[1] - extent)
    x1, y1 = min(width, centre[0] + extent), min(height, centre[1] + extent)
    if x1 - x0 < 2 or y1 - y0 < 2:
        return
    period = int(rng.integers(3, 9))
    ys, xs = np.mgrid[y0:y1, x0:x1]
    if rng.random() < 0.5:
        on = ((xs // period + ys // period) % 2).astype(bool)
    else:
        on = (((xs + ys) // period) % 2).astype(bool)
    patch = np.where(on[..., None], np.array(colour, np.uint8), np.array(other, np.uint8))
    canvas[y0:y1, x0:x1] = patch


def _draw_text(canvas: np.ndarray, rng: np.random.Generator, palette: np.ndarray, unit: int) -> None:
    height, width = canvas.shape[:2]
    length = int(rng.integers(2, 8))
    text = "".join(rng.choice(list(string.ascii_letters + string.digits), length))
    font = _FONTS[int(rng.integers(0, len(_FONTS)))]
    scale = unit / 480 * rng.uniform(0.5, 1.6)
    thickness = max(1, round(scale * rng.uniform(1, 3)))
    origin = (int(rng.integers(0, max(1, width - 20))), int(rng.integers(10, height)))
    cv2.putText(canvas, text, origin, font, scale, _colour(rng, palette), thickness, cv2.LINE_AA)
