from __future__ import annotations

import math

import numpy as np
import pytest

from retrieval_core.eval.metrics import global_average_precision
from retrieval_core.eval.recognition_threshold import choose_threshold
from retrieval_core.rerank.fusion import MatchEvidence, RerankedHit
from retrieval_core.search.recognition import RecognitionConfig, recognise, recognised_landmark_first


def _hit(image_id: int, fused: float, inliers: int | None = None) -> RerankedHit:
    evidence = None if inliers is None else MatchEvidence(inliers, inliers, np.zeros((0, 4), np.float32))
    local = None if inliers is None else 1 - math.exp(-max(inliers - 8, 0) / 20)
    return RerankedHit(image_id, fused, local, fused, image_id, evidence)


def test_verified_inliers_outvote_a_higher_ranked_unverified_landmark() -> None:
    hits = [_hit(1, 0.9, 0), _hit(2, 0.8, 120), _hit(3, 0.7, 90), _hit(4, 0.6, 0)]
    landmarks = {1: "a", 2: "b", 3: "b", 4: "a"}
    result = recognise(hits, landmarks)
    assert result.landmark == "b"
    assert result.weighted_by == "inliers"
    assert result.voters == (2, 3)
    assert result.inliers == 120
    assert result.votes == {"b": 210.0, "a": 0.0}
    assert result.confidence == pytest.approx(1 - math.exp(-112 / 20))
    assert result.recognised


def test_unlabelled_neighbours_lower_confidence_and_threshold_says_not_in_collection() -> None:
    hits = [_hit(1, 0.5, 30), _hit(2, 0.5, 30), _hit(3, 0.5, 30)]
    result = recognise(hits, {1: "a"}, RecognitionConfig(threshold=0.3))
    assert result.landmark == "a"
    strength = 1 - math.exp(-22 / 20)
    assert result.confidence == pytest.approx(strength / 3)
    assert not result.recognised


def test_without_geometry_votes_are_fused_scores_and_no_hits_no_answer() -> None:
    result = recognise([_hit(1, 0.6), _hit(2, 0.5), _hit(3, 0.4)], {1: 7, 2: 8, 3: 8})
    assert (result.landmark, result.weighted_by, result.inliers) == (8, "score", None)
    assert result.confidence == pytest.approx(0.9 / 1.5 * 0.5)
    empty = recognise([], {})
    assert (empty.landmark, empty.confidence, empty.recognised) == (None, 0.0, False)
    assert recognise([_hit(1, 0.6)], {}).landmark is None
    with pytest.raises(ValueError):
        RecognitionConfig(top_n=0)


def test_gap_is_micro_ap_over_predictions_sorted_by_confidence() -> None:
    # sorted: q0 right (P=1), q2 wrong, q1 right (P=2/3); q3 has a truth but no prediction -> M = 4
    predictions = [("a", 0.9), ("b", 0.5), ("x", 0.7), (None, 0.0)]
    truths = ["a", "b", "c", "d"]
    assert global_average_precision(predictions, truths) == pytest.approx((1 + 2 / 3) / 4)
    # a distractor's prediction is wrong and does not add to M
    assert global_average_precision([("a", 0.9), ("a", 0.95)], ["a", None]) == pytest.approx(0.5)
    assert math.isnan(global_average_precision([("a", 1.0)], [None]))
    with pytest.raises(ValueError):
        global_average_precision([], ["a"])


def test_threshold_chosen_on_validation_abstains_where_answers_are_more_often_wrong() -> None:
    # right - wrong among the answered: t=0: 2 - 2 = 0; t=0.25: a right, x wrong -> 0; t=0.5: 1 - 0 = 1
    predictions = [("a", 0.9), ("x", 0.3), ("b", 0.2), ("y", 0.1)]
    truths = ["a", None, "b", None]
    threshold, gap = choose_threshold(predictions, truths, grid=(0.0, 0.25, 0.5, 0.95))
    assert threshold == 0.5
    assert gap == pytest.approx(1 / 2)
    assert choose_threshold([], [])[0] == 0.0


def test_the_recognised_landmarks_photos_move_first_only_when_the_votes_are_confident() -> None:
    # 2 is verified as landmark "b"; 3 (b, nothing verifiable: the far side) ranks below 1, a look-alike.
    hits = [_hit(1, 0.9, 0), _hit(2, 0.8, 120), _hit(4, 0.7, 0), _hit(3, 0.6, 0)]
    landmarks = {1: "a", 2: "b", 3: "b", 4: None}
    promoted = recognised_landmark_first(hits, landmarks, min_confidence=0.5)
    assert [h.image_id for h in promoted] == [2, 3, 1, 4]
    assert all(0.0 <= h.fused_score <= 1.0 for h in promoted)
    assert [h.fused_score for h in promoted] == sorted((h.fused_score for h in promoted), reverse=True)
    # Evidence and global ranks travel with each hit.
    assert promoted[0].evidence is hits[1].evidence and promoted[1].global_rank == 3

    unsure = [_hit(1, 0.9, 0), _hit(2, 0.8, 14), _hit(3, 0.6, 0)]  # 14 inliers: a weak vote
    assert recognised_landmark_first(unsure, landmarks, min_confidence=0.5) == unsure
    assert recognised_landmark_first(hits, {}, min_confidence=0.1) == hits  # an unlabelled collection
    # Similarities without verified geometry (VLAD, patches, global) never move a landmark first.
    looks = [_hit(1, 0.9), _hit(3, 0.85), _hit(2, 0.4)]
    assert recognise(looks, landmarks, RecognitionConfig(threshold=0.3)).recognised
    assert recognised_landmark_first(looks, landmarks, min_confidence=0.3) == looks


def test_landmark_first_in_the_ranking_the_product_serves() -> None:
    """``rank_candidates`` (serving, tuning, evaluation) applies ``FusionConfig.landmark_first`` to the
    re-ranked head, with the landmark ids the index returned."""
    from retrieval_core.rerank.fusion import FusionConfig
    from retrieval_core.rerank.scorer import LocalScores
    from retrieval_core.search.pipeline import ScoredCandidates, rank_candidates

    evidence = [None, MatchEvidence(80, 90, np.zeros((0, 4), np.float32)), None, None]
    scored = ScoredCandidates(
        ids=("look-alike", "verified", "far-side", "unlabelled"),
        global_scores=np.array([0.9, 0.8, 0.7, 0.65]),
        landmark_ids=(2, 1, 1, None),
        local=LocalScores(np.array([0.0, 80.0, 0.0, 0.0]), evidence),
        method="sift",
    )
    plain = [h.image_id for h in rank_candidates(scored, FusionConfig(weight_global=0.5))]
    assert plain.index("look-alike") < plain.index("far-side")
    first = [h.image_id for h in rank_candidates(scored, FusionConfig(weight_global=0.5, landmark_first=0.3))]
    assert first[:2] == ["verified", "far-side"]
    with pytest.raises(ValueError, match="landmark_first"):
        FusionConfig(landmark_first=1.5)


def test_without_a_verified_answer_a_clear_majority_of_the_top_results_moves_first() -> None:
    # Nothing verified (a few chance inliers): 8 of the top 10 are "b", but a look-alike "a" is first and
    # another "b" photo sits below the ten.
    hits = [_hit(1, 0.95, 3)] + [_hit(i, 0.9 - i / 100, 2) for i in range(2, 10)] + [_hit(10, 0.7, 0)]
    hits += [_hit(11, 0.6, 0), _hit(12, 0.5, 0)]
    landmarks = {1: "a", **{i: "b" for i in range(2, 10)}, 10: None, 11: "a", 12: "b"}
    assert recognised_landmark_first(hits, landmarks, 0.1) == hits  # no majority rule: unchanged
    moved = [h.image_id for h in recognised_landmark_first(hits, landmarks, 0.1, min_majority=0.8)]
    assert moved == [*range(2, 10), 12, 1, 10, 11]
    assert recognised_landmark_first(hits, landmarks, 0.1, min_majority=0.9) == hits  # 8 of 10 < 0.9
    # Without geometry (VLAD, patches: no evidence at all) a majority of look-alikes moves nothing.
    unverified = [_hit(h.image_id, h.fused_score) for h in hits]
    assert recognised_landmark_first(unverified, landmarks, 0.1, min_majority=0.8) == unverified
    # A verified answer still decides, whatever the majority.
    verified = [_hit(13, 0.99, 120), *hits]
    first = recognised_landmark_first(verified, {**landmarks, 13: "a"}, 0.1, min_majority=0.5)
    assert [h.image_id for h in first[:3]] == [13, 1, 11]


def test_a_majority_must_beat_the_landmarks_size_when_a_lift_is_asked() -> None:
    """'big' fills 8 of the top 10 by its size alone (80 % of the collection); 'small' (5 %) carrying 5 of
    them is far above chance."""
    from retrieval_core.index.exact import ExactIndex

    hits = [_hit(i, 0.9 - i / 100, 2) for i in range(1, 12)]
    big = {i: "big" for i in range(1, 9)} | {9: None, 10: None, 11: "big"}
    small = {i: "small" if i % 2 else "big" for i in range(1, 12)}
    class Shares:
        def shares(self, landmark_ids):
            return {k: v for k, v in {"big": 0.8, "small": 0.05}.items() if k in landmark_ids}

    shares = Shares()
    assert recognised_landmark_first(hits, big, 0.1, 0.5) != hits  # no lift asked: the big one moves
    assert recognised_landmark_first(hits, big, 0.1, 0.5, shares, min_lift=3.0) == hits
    moved = recognised_landmark_first(hits, small, 0.1, 0.5, shares, min_lift=3.0)
    assert [h.image_id for h in moved] == [1, 3, 5, 7, 9, 11, 2, 4, 6, 8, 10]
    assert recognised_landmark_first(hits, small, 0.1, 0.5, None, min_lift=3.0) == hits  # size unknown
    index = ExactIndex(["a", "b", "c", "d"], np.eye(4, dtype=np.float32), [7, 7, 8, None])
    assert index.shares([7, 8, 9]) == {7: 0.5, 8: 0.25}
