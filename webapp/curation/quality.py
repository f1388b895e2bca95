"""Quality signals of one photo and the label-noise evidence of one embedding: plain numpy, no Django.

The numbers are what the analysis stores; the thresholds that turn them into flags live in
:class:`AnalysisConfig`, so a collection with other photos can be re-analysed with other thresholds.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from PIL import Image as PILImage

from retrieval_core.imaging import load_image

_SINGLE_CHANNEL_MODES = {"1", "L", "LA", "I", "I;16", "I;16B", "I;16L", "F"}


@dataclass(frozen=True)
class AnalysisConfig:
    """Thresholds of the dataset analysis.

    grayscale_spread: mean max-min channel difference (0-255) under which an RGB photo counts as grey
        (scans and black-and-white photos saved as RGB).
    min_side: a photo whose short side is smaller than this is "too small" to describe a landmark.
    blur_variance: variance of the Laplacian, measured at ``analysis_long_side``, under which a photo is
        blurred (sharp synthetic views measure about 90, a 3-pixel Gaussian blur about 4).
    near_duplicate_similarity: cosine above which two embeddings are the same photo (re-encoded or resized
        copies measure 0.93-0.99 with the ImageNet model, different views of one scene at most about 0.87).
    neighbours: nearest neighbours that vote on an image's label.
    vote_temperature: votes weigh ``exp((similarity - best similarity) / vote_temperature)``, so a
        neighbour much further than the nearest counts less (on synthetic scenes this separated
        mislabelled views from honest outliers better than plain counts, over six seeds).
    centroid_scale: the cosine distance to the centroid is multiplied by this (and capped at 1) so that
        a typical between-landmark distance (about 0.3-0.5) weighs as much as full disagreement.
    suspect_noise_score: noise score from which an image is listed as a suspected intruder.
    """

    grayscale_spread: float = 4.0
    min_side: int = 200
    blur_variance: float = 30.0
    analysis_long_side: int = 512
    near_duplicate_similarity: float = 0.92
    neighbours: int = 10
    vote_temperature: float = 0.05
    centroid_scale: float = 2.0
    suspect_noise_score: float = 0.6


@dataclass(frozen=True)
class QualitySignals:
    single_channel: bool
    channel_spread: float
    sharpness: float

    def is_grayscale(self, config: AnalysisConfig) -> bool:
        return self.single_channel or self.channel_spread < config.grayscale_spread

    def is_blurred(self, config: AnalysisConfig) -> bool:
        return self.sharpness < config.blur_variance


def measure_quality(
    source: Path | bytes, *, long_side: int = 512, max_pixels: int = 64_000_000
) -> QualitySignals:
    """Colourfulness and sharpness of a photo, measured on a copy no longer than ``long_side``.

    Raises ImageLoadError for unreadable files, like every decoder of the product.
    """
    data = source.read_bytes() if isinstance(source, Path) else source
    with PILImage.open(io.BytesIO(data)) as header:
        single_channel = header.mode in _SINGLE_CHANNEL_MODES
    rgb = np.asarray(load_image(data, max_pixels=max_pixels, draft_long_side=long_side))
    scale = long_side / max(rgb.shape[:2])
    if scale < 1:  # never upscale: interpolation would fake a blur
        size = (max(1, round(rgb.shape[1] * scale)), max(1, round(rgb.shape[0] * scale)))
        rgb = cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)
    spread = float((rgb.max(axis=2).astype(np.int16) - rgb.min(axis=2)).mean())
    gray = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    sharpness = float(cv2.Laplacian(gray, cv2.CV_64F).var())
    return QualitySignals(single_channel=single_channel, channel_spread=spread, sharpness=sharpness)


@dataclass(frozen=True)
class Neighbour:
    image_id: int
    similarity: float
    landmark_id: int | None


@dataclass(frozen=True)
class NoiseEvidence:
    """What the neighbours say about an image's label; ``noise_score`` is None when they cannot tell.

    The score is the mean of the (weighted) neighbour disagreement and the scaled distance to the
    landmark's centroid, in [0, 1]. Either alone misleads: a landmark with two clusters of views has honest
    images far from its centroid, and a rare view has neighbours of other landmarks; an intruder scores
    high on both.
    """

    near_duplicate_of: int | None
    nearest_similarity: float | None
    disagreement: float | None = None
    centroid_similarity: float | None = None
    suggested_landmark_id: int | None = None
    noise_score: float | None = None


def noise_evidence(
    image_id: int,
    landmark_id: int | None,
    vector: np.ndarray,
    neighbours: Sequence[Neighbour],
    *,
    landmark_size: int,
    landmark_sum: np.ndarray | None,
    config: AnalysisConfig,
) -> NoiseEvidence:
    """Label-noise evidence of one image from its nearest neighbours (best first).

    ``landmark_size`` counts the vectors of its landmark (itself included) and ``landmark_sum`` is their
    sum; the centroid is taken without the image itself, so an intruder does not pull it towards itself.
    Only ``landmark_size - 1`` neighbours vote (at most ``config.neighbours``): in a landmark of five images
    an honest one cannot have more than four same-landmark neighbours. Near-duplicates do not vote, so a
    photo imported twice under the same wrong label does not vouch for itself.
    """
    others = [n for n in neighbours if n.image_id != image_id]
    nearest = others[0].similarity if others else None
    earlier_copies = [
        n for n in others if n.similarity >= config.near_duplicate_similarity and n.image_id < image_id
    ]
    near_duplicate_of = earlier_copies[0].image_id if earlier_copies else None
    if landmark_id is None or landmark_size < 2 or landmark_sum is None:
        return NoiseEvidence(near_duplicate_of, nearest)
    votes = [
        n for n in others if n.landmark_id is not None and n.similarity < config.near_duplicate_similarity
    ][: min(config.neighbours, landmark_size - 1)]
    rest = np.asarray(landmark_sum, np.float64) - vector
    norm = float(np.linalg.norm(rest))
    if not votes or norm < 1e-9:
        return NoiseEvidence(near_duplicate_of, nearest)
    similarities = np.array([n.similarity for n in votes])
    weights = np.exp((similarities - similarities.max()) / config.vote_temperature)
    weight_of: dict[int, float] = {}
    for n, weight in zip(votes, weights, strict=True):
        if n.landmark_id is not None:  # always: only labelled neighbours vote
            weight_of[n.landmark_id] = weight_of.get(n.landmark_id, 0.0) + float(weight)
    disagreement = 1.0 - weight_of.get(landmark_id, 0.0) / float(weights.sum())
    label, weight = max(weight_of.items(), key=lambda item: item[1])  # the first of equals, as most_common
    suggested = label if label != landmark_id and weight > weights.sum() / 2 else None
    centroid = float(vector @ rest / norm)
    distance = min(1.0, max(0.0, (1.0 - centroid) * config.centroid_scale))
    score = 0.5 * disagreement + 0.5 * distance
    return NoiseEvidence(near_duplicate_of, nearest, disagreement, centroid, suggested, score)
