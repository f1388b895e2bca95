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
