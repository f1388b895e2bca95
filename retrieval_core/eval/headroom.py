"""How much a re-rank could add, and which queries are hard: the oracle ranking and the hard-query subset.

A re-rank only reorders the global top ``depth``. A perfect verifier would put every positive found there
first (in global order) and leave the rest as it was; its mAP@k is the ceiling of any re-rank at that depth.
``captured_fraction`` says how much of the oracle's gain over the global ranking a real re-rank keeps.

The hard subset is chosen from a reference ranking (the global baseline) and fixed before any lever is
measured, so no lever is tuned on it: the queries whose baseline AP is lowest.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from retrieval_core.eval.evaluation_protocol import EvalQuery
from retrieval_core.eval.metrics import average_precision_at_k

__all__ = ["captured_fraction", "hardest_queries", "mean_over", "oracle_map", "oracle_ranking"]


def oracle_ranking(ranking: Sequence[str], query: EvalQuery, depth: int) -> list[str]:
    """``ranking`` with the positives among its first ``depth`` ids moved to the front, in their order."""
    head, tail = list(ranking[:depth]), list(ranking[depth:])
    hits = [item for item in head if item in query.positives]
    return hits + [item for item in head if item not in query.positives] + tail


def oracle_map(
    rankings: Mapping[str, Sequence[str]], queries: Sequence[EvalQuery], depth: int, k: int = 100
) -> dict[str, float]:
    """Per-query AP@k of the oracle re-rank of ``rankings`` (query relpath -> ranked relpaths)."""
    out: dict[str, float] = {}
    for query in queries:
        if query.relpath not in rankings:
            continue
        ap = average_precision_at_k(
            oracle_ranking(rankings[query.relpath], query, depth), query.positives, k, query.junk
        )
        if ap is not None:
            out[query.relpath] = ap
    return out


def hardest_queries(per_query_ap: Mapping[str, float], fraction: float) -> frozenset[str]:
    """The ``fraction`` of queries with the lowest reference AP (at least one; ties broken by name)."""
    if not 0.0 < fraction <= 1.0:
        raise ValueError(f"fraction must be in (0, 1], got {fraction}")
    ordered = sorted(per_query_ap, key=lambda name: (per_query_ap[name], name))
    return frozenset(ordered[: max(1, round(fraction * len(ordered)))])


def mean_over(per_query_ap: Mapping[str, float], subset: frozenset[str] | None = None) -> float:
    """Mean AP over ``subset`` (all queries when None); a query of the subset without a score counts 0."""
    names = sorted(per_query_ap) if subset is None else sorted(subset)
    if not names:
        raise ValueError("no queries to average")
    return sum(per_query_ap.get(name, 0.0) for name in names) / len(names)


def captured_fraction(global_map: float, reranked_map: float, oracle: float) -> float | None:
    """(re-ranked - global) / (oracle - global); None when the oracle adds nothing."""
    headroom = oracle - global_map
    return None if headroom <= 1e-12 else (reranked_map - global_map) / headroom
