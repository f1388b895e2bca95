from __future__ import annotations

import random

import pytest

from retrieval_core.eval import (
    average_precision_at_k,
    first_hit_rank,
    mean_average_precision_at_k,
    precision_at_k,
    rank_by_score,
    recall_at_k,
)


def _official_map(predictions: dict, solution: dict, max_predictions: int = 100) -> float:
    """The loop of tensorflow/models delf ``MeanAveragePrecision``, restated as the reference."""
    total = 0.0
    for key, prediction in predictions.items():
        ap, seen, correct = 0.0, set(), 0
        for i in range(min(len(prediction), max_predictions)):
            if prediction[i] not in seen:
                if prediction[i] in solution[key]:
                    correct += 1
                    ap += correct / (i + 1)
                seen.add(prediction[i])
        total += ap / min(len(solution[key]), max_predictions)
    return total / len(solution)


def test_hand_computed_ap() -> None:
    # hits at ranks 1, 3, 5; four relevant images: (1 + 2/3 + 3/5) / 4
    ap = average_precision_at_k(["a", "x", "b", "y", "c"], {"a", "b", "c", "d"})
    assert ap == pytest.approx((1 + 2 / 3 + 3 / 5) / 4)


def test_perfect_and_empty_rankings() -> None:
    assert average_precision_at_k(["a", "b"], {"a", "b"}) == pytest.approx(1.0)
    assert average_precision_at_k([], {"a"}) == 0.0
    assert average_precision_at_k(["x", "y"], {"a"}) == 0.0


def test_no_relevant_images_gives_none() -> None:
    assert average_precision_at_k(["a", "b"], set()) is None
    assert recall_at_k(["a"], set(), 5) is None


def test_more_than_k_relevant_images_normalise_by_k() -> None:
    positives = {f"p{i}" for i in range(150)}
    ranked = sorted(positives)[:100]
    assert average_precision_at_k(ranked, positives, k=100) == pytest.approx(1.0)
    half = sorted(positives)[:50] + [f"miss{i}" for i in range(50)]
    assert average_precision_at_k(half, positives, k=100) == pytest.approx(50 / 100)  # not 50 / 150
    # results beyond k do not count
    late = [f"miss{i}" for i in range(100)] + ranked
    assert average_precision_at_k(late, positives, k=100) == 0.0


def test_small_k_truncates_the_list() -> None:
    # k=2: hits at 1 only; normaliser min(3, 2) = 2
    assert average_precision_at_k(["a", "x", "b"], {"a", "b", "c"}, k=2) == pytest.approx(0.5)


def test_junk_is_neither_hit_nor_miss() -> None:
    ranked = ["j", "a", "x", "b"]
    # without junk removal: (1/2 + 2/4) / 2; with it the list is [a, x, b]: (1 + 2/3) / 2
    assert average_precision_at_k(ranked, {"a", "b"}) == pytest.approx(0.5)
    assert average_precision_at_k(ranked, {"a", "b"}, junk={"j"}) == pytest.approx((1 + 2 / 3) / 2)
    # junk frees its slot within k
    assert average_precision_at_k(["j", "a", "b"], {"a", "b"}, k=2, junk={"j"}) == pytest.approx(1.0)
    assert first_hit_rank(["x", "j", "a"], {"a"}, junk={"j"}) == 2


def test_id_both_relevant_and_junk_is_an_error() -> None:
    with pytest.raises(ValueError, match="both relevant and junk"):
        average_precision_at_k(["a"], {"a"}, junk={"a"})


def test_duplicates_score_once_and_keep_their_slot() -> None:
    assert average_precision_at_k(["a", "a", "b"], {"a", "b"}) == pytest.approx((1 + 2 / 3) / 2)
    assert average_precision_at_k(["a", "a", "a"], {"a"}) == pytest.approx(1.0)
    assert precision_at_k(["a", "a"], {"a"}, k=2) == pytest.approx(0.5)


def test_ties_are_broken_by_id_reproducibly() -> None:
    scores = {"b": 0.9, "a": 0.9, "c": 1.0, "d": 0.1}
    assert rank_by_score(scores) == ["c", "a", "b", "d"]
    assert rank_by_score(dict(reversed(list(scores.items())))) == ["c", "a", "b", "d"]
    # the tie order matters for AP, which is why it must be fixed
    assert average_precision_at_k(rank_by_score(scores), {"b"}) == pytest.approx(1 / 3)


def test_precision_recall_first_hit() -> None:
    ranked = ["a", "x", "b"]
    assert precision_at_k(ranked, {"a", "b"}, k=5) == pytest.approx(2 / 5)
    assert precision_at_k(ranked, {"a", "b"}, k=1) == 1.0
    assert recall_at_k(ranked, {"a", "b", "c", "d"}, k=3) == pytest.approx(0.5)
    assert recall_at_k(ranked, {"a", "b"}, k=1) == pytest.approx(0.5)
    assert first_hit_rank(ranked, {"b"}) == 3
    assert first_hit_rank(ranked, {"z"}) is None
    with pytest.raises(ValueError, match="at least 1"):
        precision_at_k(ranked, {"a"}, k=0)


def test_mean_counts_skipped_and_missing_queries() -> None:
    results = {"q1": ["x", "a"], "q2": ["a"]}
    truth = {"q1": {"a"}, "q2": set(), "q3": {"b"}}
    result = mean_average_precision_at_k(results, truth, k=100)
    assert result.per_query == {"q1": pytest.approx(0.5), "q3": 0.0}
    assert result.mean_ap == pytest.approx(0.25)
    assert result.no_positives == ("q2",)
    assert result.missing_results == ("q3",)
    assert result.n_scored == 2
    assert _official_map({"q1": ["x", "a"], "q3": []}, {"q1": {"a"}, "q3": {"b"}}) == pytest.approx(0.25)


def test_mean_without_scorable_queries_is_none() -> None:
    result = mean_average_precision_at_k({"q": ["a"]}, {"q": set()})
    assert result.mean_ap is None and result.no_positives == ("q",) and result.n_scored == 0


def test_result_for_unknown_query_is_an_error() -> None:
    with pytest.raises(ValueError, match="without ground truth"):
        mean_average_precision_at_k({"q9": ["a"]}, {"q1": {"a"}})


def test_query_equal_to_an_index_image() -> None:
    results = {"q": ["q", "x", "a"]}
    truth = {"q": {"a"}}
    assert mean_average_precision_at_k(results, truth).mean_ap == pytest.approx(1 / 3)
    assert mean_average_precision_at_k(results, truth, self_is_junk=True).mean_ap == pytest.approx(1 / 2)
    junk = {"q": {"x"}}
    both = mean_average_precision_at_k(results, truth, junk=junk, self_is_junk=True)
    assert both.mean_ap == pytest.approx(1.0)
    with pytest.raises(ValueError, match="both relevant and junk"):
        mean_average_precision_at_k(results, {"q": {"q", "a"}}, self_is_junk=True)


def test_agrees_with_the_official_loop_on_random_rankings() -> None:
    rng = random.Random(0)
    pool = [f"i{n}" for n in range(300)]
    results, truth = {}, {}
    for q in range(30):
        truth[q] = set(rng.sample(pool, rng.randint(1, 160)))
        results[q] = [rng.choice(pool) for _ in range(rng.randint(0, 130))]  # with duplicates
    ours = mean_average_precision_at_k(results, truth, k=100)
    assert ours.mean_ap == pytest.approx(_official_map(results, truth, 100))
    assert 0 < ours.mean_ap < 1
