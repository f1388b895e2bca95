"""Choosing the fusion weight on a validation split (the thesis tuned it on its test queries).

Scores are computed once per query; each grid value only re-sorts them, so a 21-point grid over a few
hundred queries takes milliseconds.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Hashable, Sequence, Set

import numpy as np

from retrieval_core.eval.metrics import average_precision_at_k
from retrieval_core.rerank.fusion import FusionConfig, fuse

__all__ = ["DEFAULT_GRID", "Metric", "tune_fusion_weight"]

Metric = Callable[[Sequence[Hashable], Set, int], float | None]
"""``metric(ranked_ids, positives, k)`` -> score, or None for a query that cannot be scored."""

DEFAULT_GRID: tuple[float, ...] = tuple(round(v, 2) for v in np.linspace(0.0, 1.0, 21))


def tune_fusion_weight(
    global_scores_per_query: Sequence[np.ndarray],
    local_scores_per_query: Sequence[np.ndarray],
    relevance_per_query: Sequence[np.ndarray],
    grid: Sequence[float] = DEFAULT_GRID,
    cfg: FusionConfig | None = None,
    n_relevant_per_query: Sequence[int] | None = None,
    metric: Metric = average_precision_at_k,
    k: int = 100,
) -> tuple[float, list[tuple[float, float]]]:
    """Best ``weight_global`` by mean ``metric`` (default GLDv2 AP@k) and the table ``[(v, mean), ...]``.

    Per query, arrays are (N,) over its candidates in global order: raw global scores, raw local scores
    (inliers or cosines per ``cfg.local_method``, NaN = missing) and bool relevance. ``n_relevant_per_query``
    is the number of relevant images in the whole index (AP's normaliser); default: those among the
    candidates. Ties go to the larger weight_global: trust the global model unless local evidence helps.
    """
    cfg = cfg or FusionConfig()
    n_queries = len(global_scores_per_query)
    if not (len(local_scores_per_query) == len(relevance_per_query) == n_queries) or n_queries == 0:
        raise ValueError("need the same, non-zero number of queries in every per-query sequence")
    if not grid:
        raise ValueError("grid must not be empty")
    if n_relevant_per_query is not None and len(n_relevant_per_query) != n_queries:
        raise ValueError("n_relevant_per_query must have one entry per query")

    positives: list[set[Hashable]] = []
    for q, relevance in enumerate(relevance_per_query):
        found = set(np.flatnonzero(np.asarray(relevance, bool)).tolist())
        total = len(found) if n_relevant_per_query is None else int(n_relevant_per_query[q])
        if total < len(found):
            raise ValueError(f"query {q}: n_relevant {total} < {len(found)} relevant candidates")
        # Relevant images the global search missed: ids that never appear in a ranking.
        positives.append(found | {("not_retrieved", j) for j in range(total - len(found))})

    table: list[tuple[float, float]] = []
    for v in grid:
        weighted = dataclasses.replace(cfg, weight_global=float(v))
        scores = []
        for g, local, pos in zip(global_scores_per_query, local_scores_per_query, positives, strict=True):
            fused = fuse(g, local, weighted)
            ranking = np.lexsort((np.arange(len(fused)), -fused)).tolist()
            score = metric(ranking, pos, k)
            if score is not None:
                scores.append(score)
        table.append((float(v), float(np.mean(scores)) if scores else float("nan")))
    best = max(table, key=lambda row: (np.nan_to_num(row[1], nan=-1.0), row[0]))
    return best[0], table
