"""Landmark recognition from a ranked search: which landmark is this, and how sure.

As in the GLDv2 recognition challenge's retrieval-based entries, the re-ranked top results vote for their
landmark. A result's vote is its verified inlier count when the re-ranker verified geometry (SIFT), else its
fused score (VLAD, CNN patches, global only). Unlabelled results vote too, for nobody, so a query whose best
matches are unlabelled is not confidently given the landmark of a weaker one.

``confidence = share * strength`` in [0, 1]:

- ``share``: the winner's votes over all votes cast;
- ``strength``: the winner's best voter's evidence, its normalised local score when it has one (SIFT:
  ``1 - exp(-max(inliers - 8, 0) / 20)``), else its fused score.

Below ``RecognitionConfig.threshold`` the answer is "not in the collection" (``recognised`` False); the
threshold is chosen on validation queries by GAP (``retrieval_core.eval.recognition_threshold``).
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from retrieval_core.rerank.fusion import RerankedHit, promote

__all__ = [
    "LandmarkShares",
    "Recognition",
    "RecognitionConfig",
    "recognise",
    "recognised_landmark_first",
]


class LandmarkShares(Protocol):
    """How large each landmark is in the collection (the majority rule of ``recognised_landmark_first``)."""

    def shares(self, landmark_ids: Sequence[Any]) -> Mapping[Any, float]:
        """landmark id -> its fraction of the indexed photos (ids it does not know are left out)."""
        ...


@dataclass(frozen=True)
class RecognitionConfig:
    """``top_n``: how many of the ranked results vote; ``threshold``: minimum confidence for an answer."""

    top_n: int = 10
    threshold: float = 0.25

    def __post_init__(self) -> None:
        if self.top_n < 1:
            raise ValueError(f"top_n must be at least 1, got {self.top_n}")
        if not 0.0 <= self.threshold <= 1.0:
            raise ValueError(f"threshold must be in [0, 1], got {self.threshold}")


@dataclass(frozen=True)
class Recognition:
    """The predicted landmark (None: no labelled voter), its confidence, and the votes behind it.

    ``votes``: landmark -> summed vote weight (labelled voters only); ``voters``: image ids of the winner's
    voters, best first; ``inliers``: the winner's best verified inlier count (None: no geometry);
    ``weighted_by``: ``"inliers"`` or ``"score"``.
    """

    landmark: Hashable | None
    confidence: float
    recognised: bool
    votes: Mapping[Hashable, float] = field(default_factory=dict)
    voters: tuple[Hashable, ...] = ()
    inliers: int | None = None
    weighted_by: str = "score"


def recognise(
    hits: Sequence[RerankedHit],
    landmarks: Mapping[Any, Hashable | None],
    config: RecognitionConfig | None = None,
) -> Recognition:
    """Vote over the first ``config.top_n`` hits (ranked best first); ``landmarks``: image id -> landmark
    (None or absent: unlabelled)."""
    config = config or RecognitionConfig()
    voters = list(hits[: config.top_n])
    if not voters:
        return Recognition(None, 0.0, False)
    verified = any(hit.evidence is not None and hit.evidence.inliers > 0 for hit in voters)
    weights = [_vote(hit, verified) for hit in voters]
    total = float(sum(weights))
    votes: dict[Hashable, float] = {}
    for hit, weight in zip(voters, weights, strict=True):
        label = landmarks.get(hit.image_id)
        if label is not None:
            votes[label] = votes.get(label, 0.0) + weight
    if not votes or total <= 0.0:
        return Recognition(None, 0.0, False, votes, weighted_by="inliers" if verified else "score")
    winner = max(votes, key=lambda label: (votes[label], -_first_rank(voters, landmarks, label)))
    mine = [hit for hit in voters if landmarks.get(hit.image_id) == winner]
    strength = max(_strength(hit) for hit in mine)
    confidence = float(np.clip(votes[winner] / total * strength, 0.0, 1.0))
    inliers = [hit.evidence.inliers for hit in mine if hit.evidence is not None]
    return Recognition(
        landmark=winner,
        confidence=confidence,
        recognised=confidence >= config.threshold,
        votes=votes,
        voters=tuple(hit.image_id for hit in mine),
        inliers=max(inliers) if inliers else None,
        weighted_by="inliers" if verified else "score",
    )


def recognised_landmark_first(
    hits: Sequence[RerankedHit],
    landmarks: Mapping[Any, Hashable | None],
    min_confidence: float,
    min_majority: float = 0.0,
    shares: LandmarkShares | None = None,
    min_lift: float = 0.0,
    *,
    answer: Recognition | None = None,
    voters: int = RecognitionConfig().top_n,
) -> list[RerankedHit]:
    """The ranked ``hits`` with those of the landmark they name (``recognise``, named with at least
    ``min_confidence``) moved first, each part in its own order; unchanged when no landmark is recognised.
    ``answer``: the search's own recognition of these hits, reused (a search recognises once); None:
    recognised here over the first ``voters`` hits.

    What "the same place" means in a curated collection: once the verified votes name the landmark, its
    other photos belong above look-alikes of other places, even those that share no verifiable surface
    with the query (the far side of a monument). The query's own label is never used. Only votes weighted
    by verified inliers count: VLAD, patch or global similarities are votes of look-alikes, and moving the
    wrong landmark's photos first is worse than not moving any (CNN patches on sfm_landmarks fell from
    98.84 to 80.71 mAP@100 when they could). The one exception, ``min_majority`` > 0: when geometry was
    checked (SIFT evidence) but the verified votes name no landmark, one that at least that share of the
    voters (the top ``voters`` results, unlabelled ones counted) carry moves first; with
    ``min_lift`` > 0, only if that share is also at least ``min_lift`` times its share of the collection
    (asked of ``shares`` only then; a landmark it does not know never moves), so that a large landmark
    filling the top results of a small one's photo by its size alone does not. Without geometry (VLAD,
    patches, global) the majority rule does nothing: on sfm_landmarks it took E7 from 98.84 to 80.66."""
    if answer is None:
        answer = recognise(hits, landmarks, RecognitionConfig(top_n=voters))
    named = answer.landmark is not None and answer.confidence >= min_confidence
    if named and answer.weighted_by == "inliers":
        winner = answer.landmark
    elif min_majority and any(hit.evidence is not None for hit in hits):  # a verifier ran, found nothing
        winner = _majority(hits[:voters], landmarks, min_majority, shares, min_lift)
    else:
        winner = None
    if winner is None:
        return list(hits)
    return promote(hits, [landmarks.get(hit.image_id) == winner for hit in hits])


def _majority(
    voters: Sequence[RerankedHit],
    landmarks: Mapping[Any, Hashable | None],
    min_share: float,
    shares: LandmarkShares | None,
    min_lift: float,
) -> Hashable | None:
    """The landmark at least ``min_share`` of ``voters`` carry (unlabelled voters count against it), and,
    with ``min_lift``, at least ``min_lift`` times its share of the collection."""
    counts: dict[Hashable, int] = {}
    for hit in voters:
        label = landmarks.get(hit.image_id)
        if label is not None:
            counts[label] = counts.get(label, 0) + 1
    if not counts:
        return None
    label = max(counts, key=lambda name: (counts[name], -_first_rank(voters, landmarks, name)))
    share = counts[label] / len(voters)
    if share < min_share:
        return None
    if min_lift:
        prior = math.inf if shares is None else shares.shares([label]).get(label, math.inf)
        if not share >= min_lift * prior:
            return None
    return label


def _vote(hit: RerankedHit, verified: bool) -> float:
    if verified:
        return float(hit.evidence.inliers) if hit.evidence is not None else 0.0
    return max(float(hit.fused_score), 0.0)


def _strength(hit: RerankedHit) -> float:
    return float(hit.local_score) if hit.local_score is not None else max(float(hit.fused_score), 0.0)


def _first_rank(
    voters: Sequence[RerankedHit], landmarks: Mapping[Any, Hashable | None], label: Hashable
) -> int:
    return next(i for i, hit in enumerate(voters) if landmarks.get(hit.image_id) == label)
