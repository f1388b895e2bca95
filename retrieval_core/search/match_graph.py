"""Verification through the collection's match graph: a candidate the query cannot be matched with, but
which is verified against a candidate the query is verified with, counts as verified (transitively).

Why: a third of the positives in the re-ranked head are never verified against the query itself (wide
baselines, night, crops), while the collection's own photos of a place match each other far more often
(there are many of them, and some are close in viewpoint to each other). The edges are computed once,
at index time and without labels: each photo is verified against its global nearest neighbours, and
pairs with at least ``min_inliers`` inliers become edges (Chum et al.'s "Total recall" spatially
verified expansion, with the verification moved off the query path, so it costs a lookup per search).

``transitive_inliers``: candidate c's graph score is ``max over seeds s of min(inliers(q, s),
inliers(s, c))``, where a seed is a candidate with at least ``min_inliers`` verified inliers with the
query and ``(s, c)`` is an edge: a chain is as strong as its weakest link. Only candidates already in
the head are lifted; the query itself is never in the graph.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np

from retrieval_core.index.protocol import VectorIndex
from retrieval_core.rerank.sift_scorer import LocalFeatureSource, VerificationConfig
from retrieval_core.training.mining import (
    CandidatePair,
    MiningConfig,
    Progress,
    candidate_pairs,
    verify_pairs,
)

__all__ = [
    "GraphLift",
    "InMemoryMatchGraph",
    "MatchEdge",
    "MatchGraph",
    "build_match_graph",
    "transitive_inliers",
    "verify_edges",
]

MatchEdge = tuple[Hashable, Hashable, int]
"""``(image a, image b, verified inliers)``; the graph is undirected."""


@runtime_checkable
class MatchGraph(Protocol):
    """Verified matches between the collection's own images."""

    def neighbours(self, image_ids: Sequence[Hashable]) -> Mapping[Hashable, Mapping[Hashable, int]]:
        """For each of ``image_ids`` that has edges: neighbour id -> inliers (absent: no edges)."""
        ...


class InMemoryMatchGraph:
    """A ``MatchGraph`` over edges held in memory (evaluation, tests); the larger inlier count wins when
    an edge is given twice."""

    def __init__(self, edges: Iterable[MatchEdge] = ()) -> None:
        self._edges: defaultdict[Hashable, dict[Hashable, int]] = defaultdict(dict)
        for a, b, inliers in edges:
            if a == b:
                continue
            for x, y in ((a, b), (b, a)):
                self._edges[x][y] = max(int(inliers), self._edges[x].get(y, 0))

    def __len__(self) -> int:
        """Number of undirected edges."""
        return sum(len(n) for n in self._edges.values()) // 2

    def neighbours(self, image_ids: Sequence[Hashable]) -> dict[Hashable, dict[Hashable, int]]:
        return {i: dict(self._edges[i]) for i in image_ids if i in self._edges}


@dataclass(frozen=True, eq=False)
class GraphLift:
    """``inliers``: (H,) float64 transitive inliers per head candidate (NaN: no chain reaches it);
    ``via``: per candidate, the seed its chain goes through (None: none)."""

    inliers: np.ndarray
    via: tuple[Hashable | None, ...]

    @property
    def lifted(self) -> int:
        return sum(v is not None for v in self.via)


def transitive_inliers(
    ids: Sequence[Hashable], inliers: np.ndarray, graph: MatchGraph, min_inliers: int
) -> GraphLift:
    """``ids``: the H head candidates; ``inliers``: (H,) their inliers with the query (NaN: unknown).

    A candidate already verified with ``min_inliers`` or more keeps NaN here (it needs no chain); see the
    module docstring for the rest."""
    raw = np.nan_to_num(np.asarray(inliers, np.float64), nan=0.0)
    if raw.shape != (len(ids),):
        raise ValueError(f"one inlier count per candidate: {raw.shape} for {len(ids)} ids")
    seeds = {ids[i]: float(raw[i]) for i in range(len(ids)) if raw[i] >= min_inliers}
    out = np.full(len(ids), np.nan)
    via: list[Hashable | None] = [None] * len(ids)
    if not seeds:
        return GraphLift(out, tuple(via))
    edges = graph.neighbours(list(seeds))
    position = {image_id: i for i, image_id in enumerate(ids)}
    for seed, strength in seeds.items():
        for neighbour, edge in edges.get(seed, {}).items():
            i = position.get(neighbour)
            if i is None or raw[i] >= min_inliers or edge < min_inliers:
                continue
            chained = min(strength, float(edge))
            if np.isnan(out[i]) or chained > out[i]:
                out[i], via[i] = chained, seed
    return GraphLift(out, tuple(via))


def build_match_graph(
    ids: Sequence[Hashable],
    index: VectorIndex,
    features: LocalFeatureSource,
    *,
    neighbours: int,
    min_inliers: int,
    verification: VerificationConfig,
    progress: Progress | None = None,
) -> list[MatchEdge]:
    """Edges among ``ids``: each image verified against its ``neighbours`` global nearest neighbours in
    ``index``; pairs with at least ``min_inliers`` inliers. The same candidate pairs and verification as
    self-supervised mining (`retrieval_core.training.mining`)."""
    keys = list(ids)
    config = _mining_config(neighbours, min_inliers, verification)
    pairs = candidate_pairs(keys, index, config, progress=progress)  # type: ignore[arg-type]
    return verify_edges([(keys[p.a], keys[p.b]) for p in pairs], features, verification, min_inliers)


def verify_edges(
    pairs: Sequence[tuple[Hashable, Hashable]],
    features: LocalFeatureSource,
    verification: VerificationConfig,
    min_inliers: int,
) -> list[MatchEdge]:
    """The ``pairs`` (stored images) verified by the served SIFT scorer that reach ``min_inliers``; a pair
    whose image has no stored features gives no edge."""
    keys = list(dict.fromkeys(image_id for pair in pairs for image_id in pair))
    position = {image_id: i for i, image_id in enumerate(keys)}
    candidates = [
        CandidatePair(min(position[a], position[b]), max(position[a], position[b]), 0.0)
        for a, b in pairs
        if a != b
    ]
    config = _mining_config(1, min_inliers, verification)
    verified = verify_pairs(candidates, keys, features, config)  # type: ignore[arg-type]
    return [
        (keys[p.a], keys[p.b], int(p.inliers))
        for p in verified
        if p.inliers is not None and p.inliers >= min_inliers
    ]


def _mining_config(neighbours: int, min_inliers: int, verification: VerificationConfig) -> MiningConfig:
    # Below ``negative_max_inliers`` tentative matches the scorer skips RANSAC (no edge could come of it).
    return MiningConfig(
        neighbours=neighbours,
        min_inliers=min_inliers,
        negative_max_inliers=min(8, min_inliers - 1),
        verification=verification,
    )
