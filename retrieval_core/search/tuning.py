"""Choosing the fusion weight on validation queries (the thesis tuned it on its test queries).

Each query is scored once (``SearchPipeline.score``); every grid value only re-ranks those scores with
``rank_candidates``, the function serving ranks with, so the chosen weight is judged on exactly the
ranking the product would return.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Hashable, Sequence, Set

import numpy as np

from retrieval_core.eval.metrics import average_precision_at_k
from retrieval_core.rerank.fusion import FusionConfig
from retrieval_core.search.pipeline import ScoredCandidates, rank_candidates

__all__ = ["DEFAULT_GRID", "tune_fusion_weight"]

DEFAULT_GRID: tuple[float, ...] = tuple(round(v, 2) for v in np.linspace(0.0, 1.0, 21))


def tune_fusion_weight(
    scored: Sequence[ScoredCandidates],
    positives: Sequence[Set[Hashable]],
    junk: Sequence[Set[Hashable]] | None = None,
    *,
    fusion: FusionConfig,
    grid: Sequence[float] = DEFAULT_GRID,
    k: int = 100,
) -> tuple[float, list[tuple[float, float]]]:
    """Best ``weight_global`` by mean AP@k (GLDv2 definition, junk ignored) and the table ``[(v, mAP)]``.

    ``positives[q]`` are all relevant images of query q in the index (AP's normaliser), retrieved or not.
    Ties go to the larger weight: trust the global model unless local evidence helps.
    """
    junk = junk if junk is not None else [frozenset()] * len(scored)
    if not (len(scored) == len(positives) == len(junk)) or not scored:
        raise ValueError("need the same, non-zero number of queries, positive sets and junk sets")
    if not grid:
        raise ValueError("grid must not be empty")
    table: list[tuple[float, float]] = []
    for v in grid:
        weighted = dataclasses.replace(fusion, weight_global=float(v))
        scores = []
        for query, relevant, ignored in zip(scored, positives, junk, strict=True):
            ranking = [hit.image_id for hit in rank_candidates(query, weighted)]
            ap = average_precision_at_k(ranking, relevant, k, ignored)
            if ap is not None:
                scores.append(ap)
        table.append((float(v), float(np.mean(scores)) if scores else float("nan")))
    best = max(table, key=lambda row: (np.nan_to_num(row[1], nan=-1.0), row[0]))
    return best[0], table
