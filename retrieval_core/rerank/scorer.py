"""The local-scorer protocol: what every re-ranking method (SIFT, VLAD, CNN patches, none) offers the
search pipeline.

A scorer is given the query's features and the ids of the candidates to re-rank, in global order, and
returns one raw local score per candidate (NaN = no usable local data) with optional match evidence. Fusion
with the global score is the pipeline's job, so every method is fused, tuned and evaluated the same way.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol, runtime_checkable

import numpy as np
from PIL import Image

from retrieval_core.features.sift import LocalFeatures, SiftConfig
from retrieval_core.rerank.fusion import MatchEvidence

__all__ = [
    "RERANK_METHODS",
    "GlobalOnlyScorer",
    "LocalScorer",
    "LocalScores",
    "QueryFeatures",
    "RerankMethod",
]

RerankMethod = Literal["sift", "vlad", "patches", "none"]
RERANK_METHODS: tuple[RerankMethod, ...] = ("sift", "vlad", "patches", "none")


@dataclass(frozen=True, eq=False)
class QueryFeatures:
    """What is known of the query.

    vector: (D,) float32 unit global descriptor.
    image: the decoded RGB photo (local features are computed from it when not given).
    patches: (n, D) float32 CNN patch descriptors from the same forward pass, or None.
    sift: precomputed (RootSIFT) local features, e.g. from an evaluation cache, or None.
    """

    vector: np.ndarray
    image: Image.Image | None = None
    patches: np.ndarray | None = None
    sift: LocalFeatures | None = None


@dataclass(frozen=True, eq=False)
class LocalScores:
    """raw: (N,) float64 per candidate (inliers or cosines; NaN = missing); evidence: per candidate or
    None; timings: seconds per stage; missing: candidate ids without usable local data."""

    raw: np.ndarray
    evidence: list[MatchEvidence | None] | None = None
    timings: dict[str, float] = field(default_factory=dict)
    missing: tuple[Hashable, ...] = ()


@runtime_checkable
class LocalScorer(Protocol):
    """Scores candidates with local evidence; ``method`` names it and decides how its raw scores fuse."""

    method: RerankMethod
    needs_patches: bool
    @property
    def query_sift(self) -> SiftConfig | None:
        """The query's SIFT settings when the scorer needs query SIFT (the pipeline may extract it early)."""
        ...

    def score(self, query: QueryFeatures, candidate_ids: Sequence[Hashable]) -> LocalScores:
        """One raw score per id of ``candidate_ids``."""
        ...


class GlobalOnlyScorer:
    """``rerank=none``: no local evidence, the global ranking stands."""

    method: RerankMethod = "none"
    needs_patches = False
    query_sift: SiftConfig | None = None

    def score(self, query: QueryFeatures, candidate_ids: Sequence[Hashable]) -> LocalScores:
        return LocalScores(np.full(len(candidate_ids), np.nan))


def missing_ids(candidate_ids: Sequence[Hashable], raw: np.ndarray) -> tuple[Hashable, ...]:
    """Ids whose raw score is NaN."""
    return tuple(i for i, value in zip(candidate_ids, raw, strict=True) if np.isnan(value))
