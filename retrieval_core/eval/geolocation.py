"""How well a ranking says where a photo was taken: the share of queries located within 25 m, 100 m and
1 km and the median error, for the estimator (``retrieval_core.search.geolocation``) and for the 1-NN
baseline (the first result's position) on the same rankings, so the estimator is always judged against it.

A query the method gives no position counts as not located (an infinite error), so a method cannot look
better by answering less.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np

from retrieval_core.datasets.collection import CollectionFormatError, read_collection
from retrieval_core.datasets.positions import Position, collection_positions
from retrieval_core.rerank.fusion import RerankedHit
from retrieval_core.search.geolocation import (
    CONFIDENCE_RADIUS_M,
    DEFAULT_CONFIG,
    GeoCandidate,
    GeolocationConfig,
    Location,
    distance_m,
    estimate_location,
    geo_candidates,
)

__all__ = [
    "CHOSEN_ON_VALIDATION",
    "THRESHOLDS_M",
    "GeoCase",
    "GeolocationComparison",
    "GeolocationScores",
    "choose_geolocation_config",
    "compare_geolocation",
    "default_grid",
    "fit_confidence",
    "geolocation_scores",
    "geolocation_summary",
    "protocol_positions",
    "ranked_cases",
]

THRESHOLDS_M: tuple[float, ...] = (25.0, 100.0, 1000.0)
CHOSEN_ON_VALIDATION = "reported, config chosen on validation"
"""The summary entry that re-chooses the estimator's config on the run's validation queries."""


def default_grid() -> list[GeolocationConfig]:
    """The configs ``choose_geolocation_config`` tries in an evaluation (the served one was chosen so): the
    group radius, the inlier floor of verified evidence and its weight, a few values each. Validation sets
    are small, so the grid is too: choosing the visual-vote temperature and the number of candidates as
    well overfits (nested 5-fold cross-validation inside ``campus_gps``'s 65 validation queries: 31 % within
    25 m on the held-out folds with them, 35 % without, 37 % for either choice on all 65); they stay at
    values that hold across grids (top 50, temperature 0.02)."""
    return [
        GeolocationConfig(
            top_n=50,
            group_radius_m=radius,
            score_temperature=0.02,
            verified_inliers=floor,
            verified_weight=weight,
        )
        for radius, floor, weight in itertools.product((25.0, 40.0), (8, 10, 12), (1.0, 3.0))
    ]


@dataclass(frozen=True)
class GeoCase:
    """One query with a known position and its ranked candidates that have one (best first)."""

    query: str
    truth: Position
    candidates: tuple[GeoCandidate, ...]


@dataclass(frozen=True)
class GeolocationScores:
    """``within``: threshold in metres -> share of queries located that close; ``median_error_m``: over all
    queries (inf when more than half were not located); ``queries``: queries with a true position."""

    queries: int
    within: Mapping[float, float]
    median_error_m: float

    def as_dict(self) -> dict[str, object]:
        return {
            "queries": self.queries,
            "within": {f"{int(t)}m": share for t, share in self.within.items()},
            "median_error_m": self.median_error_m,
        }


@dataclass(frozen=True)
class GeolocationComparison:
    """The estimator and the 1-NN baseline on the same queries, and the estimator's mean confidence."""

    estimator: GeolocationScores
    first_result: GeolocationScores
    mean_confidence: float
    config: GeolocationConfig

    def as_dict(self) -> dict[str, object]:
        return {
            "estimator": self.estimator.as_dict(),
            "first_result": self.first_result.as_dict(),
            "mean_confidence": self.mean_confidence,
            "config": asdict(self.config),
        }


def geolocation_scores(
    errors: Sequence[float], thresholds: Sequence[float] = THRESHOLDS_M
) -> GeolocationScores:
    """Errors in metres, one per query (``math.inf``: not located) -> shares within each threshold."""
    values = np.asarray(errors, np.float64)
    if not len(values):
        return GeolocationScores(0, {t: float("nan") for t in thresholds}, float("nan"))
    within = {float(t): float(np.mean(values <= t)) for t in thresholds}
    return GeolocationScores(len(values), within, float(np.median(values)))


def compare_geolocation(
    cases: Sequence[GeoCase], config: GeolocationConfig = DEFAULT_CONFIG
) -> GeolocationComparison:
    """The estimator's and the first result's errors over ``cases``."""
    estimated, first, confidence = [], [], []
    for case in cases:
        answer = estimate_location(case.candidates, config)
        if isinstance(answer, Location):
            estimated.append(distance_m(answer.position, case.truth))
            confidence.append(answer.confidence)
        else:
            estimated.append(math.inf)
            confidence.append(0.0)
        top = case.candidates[0] if case.candidates else None
        first.append(math.inf if top is None else distance_m((top.latitude, top.longitude), case.truth))
    return GeolocationComparison(
        geolocation_scores(estimated),
        geolocation_scores(first),
        float(np.mean(confidence)) if confidence else float("nan"),
        config,
    )


def choose_geolocation_config(
    cases: Sequence[GeoCase], grid: Sequence[GeolocationConfig]
) -> tuple[GeolocationConfig, list[tuple[GeolocationConfig, GeolocationComparison]]]:
    """The config of ``grid`` that locates the most ``cases`` (validation queries only) within 25 m (ties:
    within 100 m, then the lower median error), its confidence refitted on the same cases; and every
    config's comparison. ``GeolocationConfig(top_n=1)`` (the 1-NN answer) is always tried, so the choice
    is never worse than 1-NN on these cases."""
    if not cases:
        raise ValueError("choosing a geolocation config needs validation queries with a position")
    tried = [GeolocationConfig(top_n=1), *grid]
    measured = [(config, compare_geolocation(cases, config)) for config in tried]

    def rank(item: tuple[GeolocationConfig, GeolocationComparison]) -> tuple[float, float, float]:
        scores = item[1].estimator
        return scores.within[25.0], scores.within[100.0], -scores.median_error_m

    best = max(measured, key=rank)[0]
    return replace(best, confidence_weights=fit_confidence(cases, best)), measured


def fit_confidence(
    cases: Sequence[GeoCase], config: GeolocationConfig, radius_m: float = CONFIDENCE_RADIUS_M
) -> tuple[float, float, float]:
    """Logistic coefficients ``(bias, log1p(evidence), share)`` that turn the estimator's evidence into the
    probability of an error within ``radius_m``, fitted on ``cases`` (validation queries only)."""
    from sklearn.linear_model import LogisticRegression

    features, outcomes = [], []
    for case in cases:
        answer = estimate_location(case.candidates, config)
        if not isinstance(answer, Location):
            continue
        features.append([math.log1p(answer.evidence), answer.share])
        outcomes.append(distance_m(answer.position, case.truth) <= radius_m)
    if len(set(outcomes)) < 2:
        raise ValueError("calibrating confidence needs located and mislocated validation queries")
    model = LogisticRegression(C=10.0).fit(np.array(features), np.array(outcomes))
    w_evidence, w_share = (float(w) for w in model.coef_[0])
    return float(model.intercept_[0]), w_evidence, w_share


def protocol_positions(root: Path, images: Iterable[str]) -> dict[str, Position]:
    """relpath -> position of the evaluated images that have one: ``labels.csv``'s columns where the
    collection has them, else the photo's EXIF GPS (empty: the collection has no positions)."""
    wanted = set(images)
    try:
        given = {item.relpath: item.position for item in read_collection(root)}
    except CollectionFormatError:
        given = {}
    return collection_positions((name, root / name, given.get(name)) for name in sorted(wanted))


def ranked_cases(
    rankings: Mapping[str, Sequence[RerankedHit]], positions: Mapping[str, Position], top_n: int
) -> list[GeoCase]:
    """One case per query with a position: its first ``top_n`` hits that have one, with their global
    score and verified inliers, as the served search hands them to the estimator."""
    cases = []
    for query, hits in rankings.items():
        if query not in positions:
            continue
        scored = [
            (str(hit.image_id), hit.global_score, None if hit.evidence is None else hit.evidence.inliers)
            for hit in hits[:top_n]
        ]
        cases.append(GeoCase(query, positions[query], tuple(geo_candidates(scored, positions))))
    return cases


def geolocation_summary(
    rankings: Mapping[str, Mapping[str, Sequence[RerankedHit]]],
    positions: Mapping[str, Position],
    config: GeolocationConfig = DEFAULT_CONFIG,
) -> dict[str, object] | None:
    """Query set name -> the estimator against 1-NN on its queries (``GeolocationComparison.as_dict``);
    with validation queries, also the reported queries located with the config chosen on them
    (``CHOSEN_ON_VALIDATION``), so the served config's choice can be redone on any collection. None when
    no query has a position."""
    out: dict[str, object] = {}
    deepest = max(candidate.top_n for candidate in [config, *default_grid()])
    cases = {name: ranked_cases(by_query, positions, deepest) for name, by_query in rankings.items()}
    for name, found in cases.items():
        if found:
            out[name] = compare_geolocation(found, config).as_dict()
    if cases.get("validation") and cases.get("reported"):
        try:
            chosen, _ = choose_geolocation_config(cases["validation"], default_grid())
        except ValueError:  # every validation query located, or none: nothing to calibrate confidence on
            return out or None
        out[CHOSEN_ON_VALIDATION] = compare_geolocation(cases["reported"], chosen).as_dict()
    return out or None
