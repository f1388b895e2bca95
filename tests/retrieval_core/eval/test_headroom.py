"""The oracle re-rank ceiling and the hard-query subset used by the dev benchmark (bench/levers.py)."""

from __future__ import annotations

import pytest

from retrieval_core.eval.evaluation_protocol import EvalQuery
from retrieval_core.eval.headroom import (
    captured_fraction,
    hardest_queries,
    mean_over,
    oracle_map,
    oracle_ranking,
)


def test_the_oracle_moves_only_positives_inside_the_depth() -> None:
    query = EvalQuery("q", frozenset({"p1", "p2", "p3"}))
    ranking = ["n1", "p1", "n2", "p2", "p3"]
    assert oracle_ranking(ranking, query, depth=4) == ["p1", "p2", "n1", "n2", "p3"]
    assert oracle_ranking(ranking, query, depth=0) == ranking


def test_oracle_map_is_a_ceiling_and_captured_share_measures_against_it() -> None:
    queries = [EvalQuery("a", frozenset({"x"})), EvalQuery("b", frozenset({"y"}), junk=frozenset({"j"}))]
    rankings = {"a": ["n", "n2", "x"], "b": ["j", "n", "y"]}
    oracle = oracle_map(rankings, queries, depth=3)
    assert oracle == {"a": 1.0, "b": 1.0}
    shallow = oracle_map(rankings, queries, depth=2)  # x is beyond the depth: no re-rank can lift it
    # junk takes a candidate slot of the re-rank too, though it is not scored
    assert shallow["a"] == pytest.approx(1 / 3) and shallow["b"] == pytest.approx(0.5)
    assert captured_fraction(0.4, 0.7, 1.0) == pytest.approx(0.5)
    assert captured_fraction(0.9, 0.9, 0.9) is None


def test_the_hard_subset_is_the_lowest_reference_ap() -> None:
    reference = {"a": 0.9, "b": 0.1, "c": 0.5, "d": 0.1}
    assert hardest_queries(reference, 0.5) == {"b", "d"}
    assert hardest_queries(reference, 0.01) == {"b"}  # at least one query
    assert mean_over({"b": 0.4, "d": 0.2, "a": 1.0}, frozenset({"b", "d"})) == pytest.approx(0.3)
    with pytest.raises(ValueError):
        hardest_queries(reference, 0.0)
