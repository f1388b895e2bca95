"""Ranking metrics for landmark retrieval, with mAP@k exactly as the GLDv2 retrieval challenge scores it.

GLDv2: ``AP@k(q) = (1 / min(m_q, k)) * sum_{i<=k} P_q(i) * rel_q(i)`` with ``m_q`` the number of relevant
index images (the official ``MeanAveragePrecision`` of tensorflow/models ``delf``). Conventions shared by
every function here, so numbers from different scripts agree (the thesis had four normalisers):

- ``junk`` ids are removed from the ranked list before scoring: neither hit nor miss, and they free their
  rank, so ``k`` counts non-junk results only.
- An id repeated in the ranked list keeps its rank slot but scores once (as in the official code): the
  repeat is a miss.
- Ranks are 1-based.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence, Set
from dataclasses import dataclass, field
from typing import TypeVar

QueryId = TypeVar("QueryId", bound=Hashable)


def _relevance(
    ranked_ids: Sequence[Hashable], positives: Set[Hashable], junk: Set[Hashable], k: int | None
) -> list[bool]:
    """``rel(i)`` for the first ``k`` non-junk results (all if ``k`` is None)."""
    if k is not None and k < 1:
        raise ValueError(f"k must be at least 1, got {k}")
    overlap = positives & junk
    if overlap:
        raise ValueError(f"{len(overlap)} id(s) are both relevant and junk, e.g. {next(iter(overlap))!r}")
    seen: set[Hashable] = set()
    relevance: list[bool] = []
    for item in ranked_ids:
        if item in junk:
            continue
        if k is not None and len(relevance) == k:
            break
        relevance.append(item in positives and item not in seen)
        seen.add(item)
    return relevance


def average_precision_at_k(
    ranked_ids: Sequence[Hashable], positives: Set[Hashable], k: int = 100, junk: Set[Hashable] = frozenset()
) -> float | None:
    """GLDv2 AP@k of one query; None when it has no relevant index image (it cannot be scored)."""
    if not positives:
        return None
    hits, total = 0, 0.0
    for rank, relevant in enumerate(_relevance(ranked_ids, positives, junk, k), start=1):
        if relevant:
            hits += 1
            total += hits / rank
    return total / min(len(positives), k)


def precision_at_k(
    ranked_ids: Sequence[Hashable], positives: Set[Hashable], k: int, junk: Set[Hashable] = frozenset()
) -> float:
    """Relevant results among the first ``k`` divided by ``k`` (a short list is not rewarded)."""
    return sum(_relevance(ranked_ids, positives, junk, k)) / k


def recall_at_k(
    ranked_ids: Sequence[Hashable], positives: Set[Hashable], k: int, junk: Set[Hashable] = frozenset()
) -> float | None:
    """Share of the relevant images found in the first ``k``; None without relevant images."""
    if not positives:
        return None
    return sum(_relevance(ranked_ids, positives, junk, k)) / len(positives)


def first_hit_rank(
    ranked_ids: Sequence[Hashable], positives: Set[Hashable], junk: Set[Hashable] = frozenset()
) -> int | None:
    """1-based rank of the first relevant result (after removing junk); None if none is retrieved."""
    for rank, relevant in enumerate(_relevance(ranked_ids, positives, junk, None), start=1):
        if relevant:
            return rank
    return None


def rank_by_score(scores: Mapping[Hashable, float]) -> list[Hashable]:
    """Ids by descending score, ties broken by ascending id, so equal scores give a reproducible ranking."""
    return [item for item, _ in sorted(scores.items(), key=lambda pair: (-pair[1], pair[0]))]


@dataclass(frozen=True)
class MAPResult:
    """mAP@k over the queries that can be scored, and which queries were not and why."""

    k: int
    mean_ap: float | None
    """Mean AP@k over scored queries; None when no query has a relevant index image."""
    per_query: Mapping[Hashable, float] = field(default_factory=dict)
    no_positives: tuple[Hashable, ...] = ()
    """Queries skipped because no index image is relevant (GLDv2 excludes them too)."""
    missing_results: tuple[Hashable, ...] = ()
    """Queries with relevant images but no ranked list: scored as AP 0, as the official code does."""

    @property
    def n_scored(self) -> int:
        return len(self.per_query)


def mean_average_precision_at_k(
    results: Mapping[QueryId, Sequence[Hashable]],
    ground_truth: Mapping[QueryId, Set[Hashable]],
    k: int = 100,
    junk: Mapping[QueryId, Set[Hashable]] | None = None,
    self_is_junk: bool = False,
) -> MAPResult:
    """GLDv2 mAP@k of ranked lists ``results[query]`` against relevant sets ``ground_truth[query]``.

    Every query of ``ground_truth`` is accounted for: scored, skipped for lack of relevant images, or scored 0
    when ``results`` has no list for it. A result for a query absent from ``ground_truth`` is an error (a
    mislabelled run should not quietly shrink the denominator). ``self_is_junk`` treats a query's own id in
    its list as junk, for evaluations where queries are also in the index.
    """
    unknown = [query for query in results if query not in ground_truth]
    if unknown:
        raise ValueError(f"{len(unknown)} result(s) for queries without ground truth, e.g. {unknown[0]!r}")
    per_query: dict[Hashable, float] = {}
    no_positives: list[Hashable] = []
    missing: list[Hashable] = []
    for query, positives in ground_truth.items():
        if not positives:
            no_positives.append(query)
            continue
        query_junk = frozenset((junk or {}).get(query, frozenset()))
        if self_is_junk:
            query_junk |= {query}
        ranked = results.get(query)
        if ranked is None:
            missing.append(query)
            ranked = ()
        ap = average_precision_at_k(ranked, positives, k, query_junk)
        assert ap is not None  # positives is not empty
        per_query[query] = ap
    mean_ap = sum(per_query.values()) / len(per_query) if per_query else None
    return MAPResult(k, mean_ap, per_query, tuple(no_positives), tuple(missing))


def global_average_precision(
    predictions: Sequence[tuple[Hashable | None, float]], truths: Sequence[Hashable | None]
) -> float:
    """GAP, the GLDv2 recognition metric (micro-AP over all queries' single predictions).

    ``predictions``: per query ``(landmark, confidence)``, landmark None for "no prediction";
    ``truths``: per query its landmark, None for a query of no collection landmark (a distractor).
    Predictions are sorted by confidence (descending; ties keep query order);
    ``GAP = (1 / M) * sum_i P(i) * rel(i)`` with ``M`` the number of queries that have a true landmark,
    ``P(i)`` the precision of the first ``i`` predictions and ``rel(i)`` whether prediction ``i`` is right.
    A distractor's prediction is always wrong; a missing prediction is neither counted nor ranked.
    Returns NaN when no query has a true landmark.
    """
    if len(predictions) != len(truths):
        raise ValueError(f"{len(predictions)} predictions for {len(truths)} queries")
    m = sum(truth is not None for truth in truths)
    if m == 0:
        return float("nan")
    made = [(confidence, i) for i, (label, confidence) in enumerate(predictions) if label is not None]
    made.sort(key=lambda pair: (-pair[0], pair[1]))
    correct, total = 0, 0.0
    for position, (_, i) in enumerate(made, start=1):
        if truths[i] is not None and predictions[i][0] == truths[i]:
            correct += 1
            total += correct / position
    return total / m
