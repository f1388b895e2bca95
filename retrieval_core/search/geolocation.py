"""Where was this photo taken? An estimate from the positions of its re-ranked matches.

As geo-visual ranking does (Zamir & Shah), the best candidates' positions are grouped within a radius and
each group is scored by the evidence of its members; the answer is the best group's weighted centre and
spread. On collections where most places have a few photos, the global scores of wrong places are as high
as those of the right one, so summing scores does worse than answering the first result's position. What
counts as evidence here:

- **verified inliers, soft**: a match votes by its SIFT inliers from ``verified_inliers`` on, saturating
  quickly. The floor is lower than the ranking's (``rerank.min_inliers``): small street photos rarely reach
  12 inliers, yet a match with 10-11 is at the photo's place about four times as often as an unverified one;
- **near-best visual similarity**: only matches almost as similar as the best one vote (a kernel on the gap
  to the best cosine), so the long tail of look-alikes in busy places has no say;
- **agreement**: the votes of the matches within ``group_radius_m`` of each other add up.

When the evidence is thin (the winning place is one unverified match that is not the first result) the
answer is the first result's position (``Location.fallback`` says why), so the estimate falls back to 1-NN
rather than trusting one look-alike.

Confidence is the probability that the answer is within ``CONFIDENCE_RADIUS_M`` of the truth: a logistic
curve over the group's evidence and share, fitted on validation queries (``GeolocationConfig`` holds the
coefficients chosen there; ``retrieval_core.eval.geolocation`` measures them).
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal, TypeVar

import numpy as np

from retrieval_core.datasets.positions import EARTH_RADIUS_M, Position, distance_m

__all__ = [
    "CONFIDENCE_RADIUS_M",
    "GeoCandidate",
    "GeolocationConfig",
    "Location",
    "Unlocated",
    "distance_m",
    "estimate_location",
    "geo_candidates",
    "pairwise_distances_m",
]

CONFIDENCE_RADIUS_M = 25.0
"""``Location.confidence`` is the calibrated probability of an error within this many metres."""


@dataclass(frozen=True)
class GeolocationConfig:
    """How candidates are grouped and weighed. The defaults were chosen (``choose_geolocation_config``) on
    the validation queries of a GPS-tagged street collection, where verified matches are rare and only
    candidates nearly as similar as the best one carry information about the place.

    ``top_n``: how many ranked candidates (with a position) vote; ``group_radius_m``: members of a group lie
    within this distance of its anchor; ``verified_inliers``: inliers from which a match's verification
    counts as evidence of the place (may be lower than the ranking's floor); ``verified_weight``: a verified
    match's vote (times its evidence in [0, 1), which reaches ~63 % at ``inlier_saturation`` inliers above
    the floor); ``score_temperature``: every candidate also votes ``exp((score - best score) /
    score_temperature)``, so only matches nearly as similar as the best count (0: visual votes off,
    verified matches alone decide); ``min_radius_m``: the smallest spread answered (phone GPS error);
    ``confidence_weights``: logistic coefficients ``(bias, log1p(verified evidence), vote share)``.
    """

    top_n: int = 50
    group_radius_m: float = 25.0
    verified_inliers: int = 10
    verified_weight: float = 3.0
    inlier_saturation: float = 4.0
    score_temperature: float = 0.02
    min_radius_m: float = 10.0
    confidence_weights: tuple[float, float, float] = (-1.868, 0.676, 3.292)

    def __post_init__(self) -> None:
        if self.top_n < 1:
            raise ValueError(f"top_n must be at least 1, got {self.top_n}")
        if self.group_radius_m <= 0 or self.min_radius_m < 0:
            raise ValueError("group_radius_m must be positive and min_radius_m not negative")
        if self.inlier_saturation <= 0 or self.score_temperature < 0 or self.verified_weight < 0:
            raise ValueError("inlier_saturation must be positive, score_temperature and verified_weight >= 0")


DEFAULT_CONFIG = GeolocationConfig()
ImageId = TypeVar("ImageId", bound=Hashable)
Method = Literal["verified_group", "agreeing_matches", "first_result", "best_match"]


@dataclass(frozen=True)
class GeoCandidate:
    """A ranked match with a known position; ``score``: its global (cosine) similarity to the query;
    ``inliers``: its verified SIFT inliers (None: not verified)."""

    image_id: Hashable
    latitude: float
    longitude: float
    score: float
    inliers: int | None = None


@dataclass(frozen=True)
class Location:
    """The estimated position, the radius (metres) its supporting matches spread over, the calibrated
    confidence, and the matches it rests on (best first). ``method``: ``"verified_group"`` (verified
    matches at one place), ``"agreeing_matches"`` (several close matches at one place, none verified) or
    ``"first_result"`` / ``"best_match"`` (one match's position: the first result's, or the most similar
    one's, when nothing agrees with another)."""

    latitude: float
    longitude: float
    radius_m: float
    confidence: float
    supporting_image_ids: tuple[Hashable, ...]
    method: Method
    evidence: float = 0.0
    """The group's summed verified evidence (0: none)."""
    share: float = 0.0
    """The group's part of all the votes cast (distinctiveness: one place among many is less sure)."""
    fallback: str | None = None
    """Why the answer is one match's position rather than a group's (None: a group's, or nothing else
    competed)."""

    @property
    def position(self) -> Position:
        return self.latitude, self.longitude


@dataclass(frozen=True)
class Unlocated:
    """No estimate, and why (said to the user as is)."""

    reason: str


def pairwise_distances_m(positions: np.ndarray) -> np.ndarray:
    """``(N, 2)`` degrees ``(latitude, longitude)`` -> ``(N, N)`` haversine distances in metres."""
    lat, lon = np.radians(positions[:, 0]), np.radians(positions[:, 1])
    h = (
        np.sin((lat[:, None] - lat[None]) / 2) ** 2
        + np.cos(lat[:, None]) * np.cos(lat[None]) * np.sin((lon[:, None] - lon[None]) / 2) ** 2
    )
    return np.asarray(2 * EARTH_RADIUS_M * np.arcsin(np.sqrt(np.clip(h, 0.0, 1.0))))


def geo_candidates(
    ranked: Sequence[tuple[ImageId, float, int | None]], positions: Mapping[ImageId, Position]
) -> list[GeoCandidate]:
    """``(image id, fused score, inliers)`` best first -> candidates, those without a position left out."""
    return [
        GeoCandidate(image_id, *positions[image_id], score, inliers)
        for image_id, score, inliers in ranked
        if image_id in positions
    ]


def estimate_location(
    candidates: Sequence[GeoCandidate], config: GeolocationConfig = DEFAULT_CONFIG
) -> Location | Unlocated:
    """The query's position from its ranked candidates (best first, only those with a position).

    Each of the first ``top_n`` votes (verified evidence, and visual similarity close to the best); the
    candidates within ``group_radius_m`` of each candidate form its group, and the group with the most
    votes wins (ties: the better-ranked anchor). A winner that is one unverified match other than the first
    result is thin evidence: the first result's group answers instead (``Location.fallback``). Centre: the
    members' positions weighted by their votes; radius: their weighted RMS distance to it (at least
    ``min_radius_m``). A group of the first result alone answers its position (``method="first_result"``)."""
    if not candidates:
        return Unlocated("none of the best matches has a known position")
    head = list(candidates[: config.top_n])
    evidence = np.array([_evidence(c.inliers, config) for c in head])
    scores = np.array([c.score for c in head], np.float64)
    visual = (
        np.exp((scores - scores.max()) / config.score_temperature)
        if config.score_temperature > 0
        else np.zeros(len(head))
    )
    votes = config.verified_weight * evidence + visual
    if not votes.any():  # nothing verified and visual votes off: the first result
        votes[0] = 1.0
    points = [(c.latitude, c.longitude) for c in head]
    members = (pairwise_distances_m(np.array(points)) <= config.group_radius_m) & (votes > 0)[None]
    group_votes = members @ votes
    anchor = int(np.argmax(group_votes))
    fallback = None
    if anchor != 0 and not members[anchor, 0] and members[anchor].sum() < 2 and not evidence[anchor] > 0:
        fallback = "the best-supported place is one unverified match: the first result's position instead"
        anchor = 0
    chosen = np.flatnonzero(members[anchor])
    if not len(chosen):  # the first result cast no vote (visual votes off, not verified): its own position
        chosen = np.array([0])
        fallback = fallback or "no match cast a vote for the first result's place: its position alone"
    weights = np.where(votes[chosen] > 0, votes[chosen], 1.0)
    centre = (
        float(np.average([points[i][0] for i in chosen], weights=weights)),
        float(np.average([points[i][1] for i in chosen], weights=weights)),
    )
    squared = [distance_m(centre, points[i]) ** 2 for i in chosen]
    spread = math.sqrt(float(np.average(squared, weights=weights)))
    verified = float(evidence[chosen].sum())
    share = float(votes[chosen].sum() / votes.sum())
    order = sorted(chosen.tolist(), key=lambda i: (-votes[i], i))
    method: Method = (
        "verified_group"
        if verified > 0
        else "agreeing_matches"
        if len(chosen) > 1
        else "first_result"
        if chosen[0] == 0
        else "best_match"
    )
    if method in ("first_result", "best_match") and fallback is None:
        fallback = "no other match agrees with it, and no place has more support"
    return Location(
        centre[0],
        centre[1],
        max(spread, config.min_radius_m),
        _confidence(verified, share, config),
        tuple(head[i].image_id for i in order),
        method,
        verified,
        share,
        fallback,
    )


def _evidence(inliers: int | None, config: GeolocationConfig) -> float:
    """A match's verified evidence in [0, 1): 0 below the verification threshold."""
    if inliers is None or inliers < config.verified_inliers:
        return 0.0
    return 1.0 - math.exp(-(inliers - config.verified_inliers + 1) / config.inlier_saturation)


def _confidence(evidence: float, share: float, config: GeolocationConfig) -> float:
    bias, w_evidence, w_share = config.confidence_weights
    z = bias + w_evidence * math.log1p(evidence) + w_share * share
    return round(1.0 / (1.0 + math.exp(-z)), 4)
