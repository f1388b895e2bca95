from __future__ import annotations

import math

import pytest

from retrieval_core.search.geolocation import (
    GeoCandidate,
    GeolocationConfig,
    Location,
    Unlocated,
    distance_m,
    estimate_location,
    geo_candidates,
)

ORIGIN = (48.0, 11.0)
METRE_LAT = 1 / 111_195  # degrees of latitude per metre


def _at(image_id: int, north_m: float, inliers: int | None = None, score: float = 0.5) -> GeoCandidate:
    return GeoCandidate(image_id, ORIGIN[0] + north_m * METRE_LAT, ORIGIN[1], score, inliers)


def test_distance_of_one_degree_of_latitude_and_of_nothing() -> None:
    assert distance_m((0.0, 0.0), (1.0, 0.0)) == pytest.approx(111_195, rel=1e-3)
    assert distance_m(ORIGIN, ORIGIN) == 0.0
    # A degree of longitude shrinks with the cosine of the latitude.
    assert distance_m((60.0, 0.0), (60.0, 1.0)) == pytest.approx(111_195 * 0.5, rel=2e-3)


def test_agreeing_verified_matches_outvote_a_better_ranked_lone_verified_one() -> None:
    candidates = [
        _at(1, 500, inliers=40, score=0.9),  # the first result: one match at a wrong place
        _at(2, 0, inliers=35),
        _at(3, 8, inliers=30),
        _at(4, -6, inliers=32),
        _at(5, 2000, inliers=None, score=0.8),  # unverified look-alikes count for nothing
    ]
    answer = estimate_location(candidates, GeolocationConfig(group_radius_m=25))
    assert isinstance(answer, Location)
    assert answer.method == "verified_group"
    assert distance_m(answer.position, ORIGIN) < 5
    assert set(answer.supporting_image_ids) == {2, 3, 4}
    assert answer.supporting_image_ids[0] == 2  # the strongest evidence first
    assert 0 < answer.share < 1


def test_without_verified_evidence_the_answer_is_the_first_results_position() -> None:
    candidates = [_at(1, 300, inliers=5, score=0.9), _at(2, 0, score=0.8), _at(3, 1, score=0.8)]
    answer = estimate_location(candidates, GeolocationConfig(verified_inliers=15))
    assert isinstance(answer, Location)
    assert answer.method == "first_result"
    assert answer.position == (candidates[0].latitude, candidates[0].longitude)
    assert answer.supporting_image_ids == (1,)
    assert answer.evidence == 0.0


def test_centre_is_weighted_by_evidence_and_radius_is_the_spread() -> None:
    config = GeolocationConfig(group_radius_m=50, min_radius_m=1, inlier_saturation=20)
    strong, weak = _at(1, 0, inliers=200), _at(2, 20, inliers=16)
    answer = estimate_location([strong, weak], config)
    assert isinstance(answer, Location)
    north = distance_m(ORIGIN, answer.position)
    assert 0 < north < 10  # pulled towards the strong match, not halfway
    assert answer.radius_m == pytest.approx(math.sqrt(north * (20 - north)), rel=0.05)
    lone = estimate_location([strong], config)
    assert isinstance(lone, Location)
    assert lone.radius_m == 1


def test_confidence_rises_with_evidence_and_distinctiveness() -> None:
    config = GeolocationConfig()
    one = estimate_location([_at(1, 0, inliers=20)], config)
    many = estimate_location([_at(1, 0, inliers=80), _at(2, 3, inliers=60), _at(3, 5, inliers=70)], config)
    split = estimate_location([_at(1, 0, inliers=80), _at(2, 900, inliers=80)], config)
    nothing = estimate_location([_at(1, 0, inliers=None)], config)
    assert all(isinstance(a, Location) for a in (one, many, split, nothing))
    confidences = [a.confidence for a in (nothing, one, many) if isinstance(a, Location)]
    assert confidences == sorted(confidences) and confidences[0] < confidences[-1]
    assert isinstance(split, Location) and isinstance(many, Location)
    assert split.share == pytest.approx(0.5)
    assert split.confidence < many.confidence
    assert all(0.0 <= c <= 1.0 for c in confidences)


def test_only_the_first_top_n_candidates_are_looked_at() -> None:
    far_crowd = [_at(i, 5000, inliers=100) for i in range(3, 10)]
    answer = estimate_location([_at(1, 0, inliers=30), *far_crowd], GeolocationConfig(top_n=1))
    assert isinstance(answer, Location)
    assert answer.supporting_image_ids == (1,)


def test_no_candidate_with_a_position_is_unlocated_with_a_reason() -> None:
    answer = estimate_location([])
    assert isinstance(answer, Unlocated)
    assert "position" in answer.reason


def test_geo_candidates_skip_matches_without_a_position_and_keep_the_order() -> None:
    ranked = [("a", 0.9, 30), ("b", 0.8, None), ("c", 0.7, 12)]
    found = geo_candidates(ranked, {"c": (1.0, 2.0), "a": (3.0, 4.0)})
    assert [(c.image_id, c.latitude, c.inliers) for c in found] == [("a", 3.0, 30), ("c", 1.0, 12)]


@pytest.mark.parametrize(
    "bad", [{"top_n": 0}, {"group_radius_m": 0}, {"min_radius_m": -1}, {"inlier_saturation": 0}]
)
def test_config_refuses_meaningless_values(bad: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        GeolocationConfig(**bad)  # type: ignore[arg-type]


def test_matches_nearly_as_similar_as_the_best_agree_where_weaker_ones_do_not_count() -> None:
    config = GeolocationConfig(score_temperature=0.02, verified_weight=5.0, group_radius_m=40)
    close = [_at(2, 0, score=0.79), _at(3, 10, score=0.785)]
    crowd = [_at(i, 3000, score=0.6) for i in range(10, 40)]  # many, but far less similar: no say
    answer = estimate_location([_at(1, 800, score=0.8), *close, *crowd], config)
    assert isinstance(answer, Location)
    assert answer.method == "agreeing_matches"
    assert set(answer.supporting_image_ids) == {2, 3}
    assert distance_m(answer.position, ORIGIN) < 10
    alone = estimate_location([_at(1, 800, score=0.8), _at(2, 0, score=0.7)], config)
    assert isinstance(alone, Location) and alone.method == "first_result"


def test_a_match_below_the_ranking_floor_but_above_the_location_floor_moves_the_answer() -> None:
    # Small street photos rarely reach the ranking's 12 inliers; 10-11 are already evidence of the place.
    candidates = [_at(1, 900, inliers=0, score=0.80), _at(2, 0, inliers=11, score=0.78)]
    low = estimate_location(candidates, GeolocationConfig(verified_inliers=10, verified_weight=3.0))
    high = estimate_location(candidates, GeolocationConfig(verified_inliers=12, verified_weight=3.0))
    assert isinstance(low, Location) and isinstance(high, Location)
    assert low.supporting_image_ids == (2,)
    assert low.method == "verified_group" and low.evidence > 0
    assert high.supporting_image_ids == (1,)
    assert high.method == "first_result" and high.evidence == 0.0


def test_verified_evidence_saturates_so_agreeing_matches_outvote_one_huge_match() -> None:
    config = GeolocationConfig(verified_inliers=10, inlier_saturation=4.0, verified_weight=3.0)
    huge = _at(1, 900, inliers=500, score=0.8)
    agreeing = [_at(2, 0, inliers=14, score=0.7), _at(3, 6, inliers=14, score=0.7)]
    answer = estimate_location([huge, *agreeing], config)
    assert isinstance(answer, Location)
    assert set(answer.supporting_image_ids) == {2, 3}
    assert distance_m(answer.position, ORIGIN) < 10
    # One of them alone is outvoted by the huge match: agreement, not the count of inliers, decides.
    alone = estimate_location([huge, agreeing[0]], config)
    assert isinstance(alone, Location) and alone.supporting_image_ids == (1,)


def test_a_lone_unverified_look_alike_falls_back_to_the_first_result_with_the_reason() -> None:
    config = GeolocationConfig(score_temperature=0.02, verified_inliers=10, group_radius_m=40)
    # The second result is more similar globally than the first (which the re-rank put first), but
    # nothing agrees with it and nothing verifies it: thin evidence.
    first, look_alike = _at(1, 900, inliers=0, score=0.78), _at(2, 0, inliers=0, score=0.80)
    answer = estimate_location([first, look_alike], config)
    assert isinstance(answer, Location)
    assert answer.method == "first_result"
    assert distance_m(answer.position, (first.latitude, first.longitude)) < 0.01
    assert answer.fallback is not None and "unverified" in answer.fallback
    # Verified, the same match is evidence enough to move the answer.
    verified = estimate_location([first, _at(2, 0, inliers=12, score=0.80)], config)
    assert isinstance(verified, Location)
    assert verified.supporting_image_ids == (2,) and verified.fallback is None
    # Two agreeing look-alikes are evidence enough too.
    agreeing = estimate_location([first, look_alike, _at(3, 5, inliers=0, score=0.795)], config)
    assert isinstance(agreeing, Location)
    assert agreeing.method == "agreeing_matches" and agreeing.fallback is None


def test_a_group_answer_says_no_fallback_and_a_lone_first_result_says_why() -> None:
    lone = estimate_location([_at(1, 0, score=0.9), _at(2, 900, score=0.5)])
    assert isinstance(lone, Location)
    assert lone.method == "first_result" and lone.fallback is not None
