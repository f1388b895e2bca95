from __future__ import annotations

import math

import pytest

from retrieval_core.eval.geolocation import (
    GeoCase,
    choose_geolocation_config,
    compare_geolocation,
    geolocation_scores,
)
from retrieval_core.search.geolocation import GeoCandidate, GeolocationConfig

METRE_LAT = 1 / 111_195


def _candidate(image_id: int, north_m: float, score: float, inliers: int | None = None) -> GeoCandidate:
    return GeoCandidate(image_id, north_m * METRE_LAT, 0.0, score, inliers)


def test_scores_count_shares_within_each_threshold_and_the_median() -> None:
    scores = geolocation_scores([10.0, 50.0, 500.0, math.inf])
    assert scores.queries == 4
    assert scores.within == {25.0: 0.25, 100.0: 0.5, 1000.0: 0.75}
    assert scores.median_error_m == pytest.approx(275.0)
    assert scores.as_dict()["within"] == {"25m": 0.25, "100m": 0.5, "1000m": 0.75}
    empty = geolocation_scores([])
    assert empty.queries == 0 and math.isnan(empty.median_error_m)


def _cases() -> list[GeoCase]:
    """Half the queries: the first result is 300 m off but two near-best matches agree on the truth; the
    other half: the first result is right and a lone look-alike is elsewhere."""
    fooled = [
        GeoCase(
            f"f{i}",
            (0.0, 0.0),
            (_candidate(1, 300, 0.80), _candidate(2, 5, 0.795), _candidate(3, -5, 0.79)),
        )
        for i in range(4)
    ]
    right = [GeoCase(f"r{i}", (0.0, 0.0), (_candidate(1, 3, 0.8), _candidate(2, 600, 0.6))) for i in range(4)]
    return fooled + right


def test_comparison_judges_the_estimator_against_the_first_result_on_the_same_cases() -> None:
    cases = _cases()
    one_nn = compare_geolocation(cases, GeolocationConfig(top_n=1))
    grouped = compare_geolocation(cases, GeolocationConfig(score_temperature=0.02, group_radius_m=40))
    assert one_nn.estimator == one_nn.first_result
    assert one_nn.first_result.within[25.0] == 0.5
    assert grouped.first_result == one_nn.first_result
    assert grouped.estimator.within[25.0] == 1.0
    unlocated = compare_geolocation([GeoCase("q", (0.0, 0.0), ())])
    assert unlocated.estimator.within[25.0] == 0.0 and unlocated.estimator.median_error_m == math.inf


def test_the_choice_on_validation_is_never_worse_than_one_nn_and_its_confidence_is_fitted() -> None:
    lost = GeoCase("lost", (0.0, 0.0), (_candidate(1, 500, 0.8), _candidate(2, 520, 0.79)))
    cases = [*_cases(), lost]
    # A grid of configs that all do worse than 1-NN here: the 1-NN answer is chosen.
    worse = [GeolocationConfig(score_temperature=1.0, group_radius_m=1000, top_n=2)]
    fallback, measured = choose_geolocation_config(cases, worse)
    assert fallback.top_n == 1 and len(measured) == 2
    chosen, _ = choose_geolocation_config(cases, [GeolocationConfig(score_temperature=0.02)])
    assert chosen.score_temperature == 0.02
    assert chosen.confidence_weights != GeolocationConfig().confidence_weights
    with pytest.raises(ValueError):
        choose_geolocation_config([], worse)
