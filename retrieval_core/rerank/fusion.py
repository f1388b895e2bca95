"""Fusing global similarity with local evidence into one score per candidate.

Both parts are mapped to [0, 1] before the weighted sum, so the weight means what it says:
- global: cosine similarity of unit embeddings (inner product), clipped to [0, 1] (negative = unrelated);
- local ``sift``: RANSAC inliers n -> ``1 - exp(-max(n - min_inliers, 0) / inlier_saturation)``. Up to
  ``min_inliers`` is what unrelated images reach by chance (0 evidence); beyond it the score rises fast and
  saturates, since 60 or 600 inliers both mean "same place". With the defaults: 20 -> 0.45, 40 -> 0.80,
  60 -> 0.93;
- local ``vlad`` / ``patches``: cosine similarity, clipped to [0, 1].
A candidate without local evidence (NaN: features missing or empty) keeps its normalised global score as
fused score, i.e. it is neither rewarded nor punished for the missing data.

Recognised landmark first (``landmark_first`` = c > 0): when the re-ranked head names a landmark with
confidence at least c (``retrieval_core.search.recognition``: inlier-weighted votes of the top results),
the head's candidates labelled with that landmark rank above the others, in two tiers whose scores stay in
[0, 1] and keep their order: first -> 0.5 + fused / 2, the others -> fused / 2 (``two_tiers``). It uses the
collection's curated labels, never the query's, and does nothing on unlabelled collections. When the
verified votes name no landmark, ``landmark_first_majority`` = s > 0 lets a plain majority decide instead:
a landmark at least a share s of the recognition's voters (the top 10 results) carry, and with
``landmark_first_lift`` = L > 0, at least L times its share of the collection.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

__all__ = [
    "Candidate",
    "FusionConfig",
    "LocalMethod",
    "MatchEvidence",
    "RerankedHit",
    "fuse",
    "normalise_global",
    "normalise_local",
    "promote",
    "rank_fused",
    "two_tiers",
]

LocalMethod = Literal["sift", "vlad", "patches"]


@dataclass(frozen=True)
class FusionConfig:
    """fused = weight_global * global + (1 - weight_global) * local, over the ``top_k`` global hits.

    These defaults are building blocks for tests and experiments; what is served is
    ``retrieval_core.search.served.SERVED.search.fusion``."""

    weight_global: float = 0.7
    top_k: int = 100
    local_method: LocalMethod = "sift"
    inlier_saturation: float = 20.0
    min_inliers: int = 8
    landmark_first: float = 0.0
    landmark_first_majority: float = 0.0
    landmark_first_lift: float = 0.0

    def __post_init__(self) -> None:
        if not 0.0 <= self.weight_global <= 1.0:
            raise ValueError(f"weight_global must be in [0, 1], got {self.weight_global}")
        if self.top_k <= 0:
            raise ValueError(f"top_k must be positive, got {self.top_k}")
        if self.local_method not in ("sift", "vlad", "patches"):
            raise ValueError(f"local_method must be sift, vlad or patches, got {self.local_method!r}")
        if self.inlier_saturation <= 0 or self.min_inliers < 0:
            raise ValueError("inlier_saturation must be positive and min_inliers non-negative")
        if not 0.0 <= self.landmark_first <= 1.0:
            raise ValueError(f"landmark_first must be in [0, 1] (0 = off), got {self.landmark_first}")
        if self.landmark_first_lift < 0:
            raise ValueError(f"landmark_first_lift must be >= 0 (0 = off), got {self.landmark_first_lift}")
        if not 0.0 <= self.landmark_first_majority <= 1.0:
            raise ValueError(
                f"landmark_first_majority must be in [0, 1] (0 = off), got {self.landmark_first_majority}"
            )


@dataclass(frozen=True)
class Candidate:
    """One global-search hit: the image id and its cosine similarity to the query."""

    image_id: Hashable
    global_score: float


@dataclass(frozen=True, eq=False)
class MatchEvidence:
    """What the local matcher found: counts, and the inlier pairs (K, 4) float32 ``(xq, yq, xc, yc)``
    in original image pixels, for drawing lines between the query and the candidate."""

    inliers: int
    tentative_matches: int
    points: np.ndarray


@dataclass(frozen=True, eq=False)
class RerankedHit:
    """A candidate after re-ranking. ``local_score`` is normalised, None when local data was missing."""

    image_id: Hashable
    global_score: float
    local_score: float | None
    fused_score: float
    global_rank: int
    evidence: MatchEvidence | None = None


def normalise_global(scores: np.ndarray) -> np.ndarray:
    """(N,) cosine similarities -> (N,) float64 in [0, 1]."""
    return np.clip(np.asarray(scores, np.float64), 0.0, 1.0)


def normalise_local(raw: np.ndarray, cfg: FusionConfig) -> np.ndarray:
    """(N,) raw local scores (inlier counts or cosines, NaN = missing) -> (N,) in [0, 1], NaN kept."""
    raw = np.asarray(raw, np.float64)
    if cfg.local_method == "sift":
        excess = np.maximum(raw - cfg.min_inliers, 0.0)
        return np.where(np.isnan(raw), np.nan, 1.0 - np.exp(-excess / cfg.inlier_saturation))
    return np.where(np.isnan(raw), np.nan, np.clip(raw, 0.0, 1.0))


def fuse(global_scores: np.ndarray, local_scores: np.ndarray, cfg: FusionConfig) -> np.ndarray:
    """(N,) raw global + (N,) raw local (NaN = missing) -> (N,) fused scores in [0, 1]."""
    g = normalise_global(global_scores)
    local = normalise_local(local_scores, cfg)
    if g.shape != local.shape:
        raise ValueError(f"global {g.shape} and local {local.shape} scores must have the same shape")
    w = cfg.weight_global
    return np.where(np.isnan(local), g, w * g + (1.0 - w) * np.nan_to_num(local))


def two_tiers(fused: np.ndarray, first: np.ndarray) -> np.ndarray:
    """(N,) scores in [0, 1] and an (N,) mask -> (N,) scores in [0, 1] where every masked one is above every
    other, each tier keeping its order: masked -> 0.5 + fused / 2, the others -> fused / 2."""
    fused = np.asarray(fused, np.float64)
    return np.where(first, 0.5 + fused / 2, fused / 2)


def promote(hits: Sequence[RerankedHit], first: Sequence[bool]) -> list[RerankedHit]:
    """Ranked hits with the ``first`` ones moved above the rest (``two_tiers`` on their fused scores); the
    order within each tier is kept."""
    if len(first) != len(hits):
        raise ValueError("one flag per hit")
    scores = two_tiers(np.array([hit.fused_score for hit in hits], np.float64), np.asarray(first, bool))
    order = sorted(range(len(hits)), key=lambda i: (not first[i], i))
    return [dataclasses.replace(hits[i], fused_score=float(scores[i])) for i in order]


def rank_fused(
    candidates: Sequence[Candidate],
    local_raw: Sequence[float | None],
    cfg: FusionConfig,
    evidence: Sequence[MatchEvidence | None] | None = None,
) -> list[RerankedHit]:
    """Hits sorted by fused score (ties: better global rank first); ``local_raw`` None = missing.

    ``candidates`` are in global order (their position is their ``global_rank``). Any local method works
    here, e.g. ``patch_similarity`` values for ``local_method="patches"``.
    """
    if len(local_raw) != len(candidates) or (evidence is not None and len(evidence) != len(candidates)):
        raise ValueError("candidates, local scores and evidence must have the same length")
    if not candidates:
        return []
    raw = np.array([np.nan if v is None else float(v) for v in local_raw], np.float64)
    global_scores = np.array([c.global_score for c in candidates], np.float64)
    local = normalise_local(raw, cfg)
    fused = fuse(global_scores, raw, cfg)
    order = np.lexsort((np.arange(len(candidates)), -fused))
    return [
        RerankedHit(
            image_id=candidates[i].image_id,
            global_score=float(global_scores[i]),
            local_score=None if np.isnan(local[i]) else float(local[i]),
            fused_score=float(fused[i]),
            global_rank=int(i),
            evidence=None if evidence is None else evidence[i],
        )
        for i in order
    ]
