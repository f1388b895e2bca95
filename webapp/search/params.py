"""The search parameters of the API and the page, validated: every bad value is a clear 400, never a 500.

``k`` (1-100), ``rerank`` (a method), and the filters: ``landmark`` (a landmark id), ``taken_after`` /
``taken_before`` (``YYYY-MM-DD``, inclusive, EXIF capture date in UTC) and ``lat`` + ``lon`` + ``radius_m``
(all three together; radius in metres, at most ``MAX_RADIUS_M``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time

from retrieval_core.index.filters import MAX_RADIUS_M, GeoRadius, SearchFilters, epoch_seconds
from retrieval_core.rerank.scorer import RERANK_METHODS, RerankMethod
from webapp.catalog.models import Landmark

__all__ = ["BadParameter", "SearchParams", "parse_search_params"]

FILTER_FIELDS = ("landmark", "taken_after", "taken_before", "lat", "lon", "radius_m")


class BadParameter(ValueError):
    """A search parameter is malformed or out of range; the message names it and says what is expected."""


@dataclass(frozen=True)
class SearchParams:
    k: int | None = None
    method: RerankMethod | None = None
    filters: SearchFilters = field(default_factory=SearchFilters)


def parse_search_params(data: Mapping[str, str]) -> SearchParams:
    """Read ``k``, ``rerank`` and the filters from a form or query string (empty values mean "not set")."""
    values = {name: (data.get(name) or "").strip() for name in ("k", "rerank", *FILTER_FIELDS)}
    k = None
    if values["k"]:
        try:
            k = int(values["k"])
        except ValueError:
            raise BadParameter("k must be an integer") from None
        if not 1 <= k <= 100:
            raise BadParameter("k must be between 1 and 100")
    method = values["rerank"] or None
    if method is not None and method not in RERANK_METHODS:
        raise BadParameter(f"rerank must be one of {', '.join(RERANK_METHODS)}")
    return SearchParams(k=k, method=method, filters=_filters(values))


def _filters(values: Mapping[str, str]) -> SearchFilters:
    landmark_id = None
    if values["landmark"]:
        try:
            landmark_id = int(values["landmark"])
        except ValueError:
            raise BadParameter("landmark must be a landmark id (an integer)") from None
        if not Landmark.objects.filter(pk=landmark_id).exists():
            raise BadParameter(f"there is no landmark with id {landmark_id}")
    after = _day(values["taken_after"], "taken_after")
    before = _day(values["taken_before"], "taken_before")
    taken_from = None if after is None else epoch_seconds(datetime.combine(after, time.min, UTC))
    taken_to = None if before is None else epoch_seconds(datetime.combine(before, time.max, UTC))
    if taken_from is not None and taken_to is not None and taken_from > taken_to:
        raise BadParameter("taken_after must not be later than taken_before")
    place = [values["lat"], values["lon"], values["radius_m"]]
    near = None
    if any(place):
        if not all(place):
            raise BadParameter("a place filter needs lat, lon and radius_m together")
        lat, lon, radius = (_number(v, n) for v, n in zip(place, ("lat", "lon", "radius_m"), strict=True))
        if not 0 < radius <= MAX_RADIUS_M:
            raise BadParameter(f"radius_m must be more than 0 and at most {MAX_RADIUS_M:.0f} (metres)")
        try:
            near = GeoRadius(lat, lon, radius)
        except ValueError as error:
            raise BadParameter(str(error)) from None
    return SearchFilters(landmark_id=landmark_id, taken_from=taken_from, taken_to=taken_to, near=near)


def _day(text: str, name: str) -> date | None:
    if not text:
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise BadParameter(f"{name} must be a date as YYYY-MM-DD") from None


def _number(text: str, name: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise BadParameter(f"{name} must be a number") from None
    if not math.isfinite(value):
        raise BadParameter(f"{name} must be a finite number")
    return value
