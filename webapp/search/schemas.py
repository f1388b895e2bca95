"""The search's parameters and its answer, declared once as pydantic schemas.

The JSON API validates requests and serialises responses with them (so its OpenAPI document, served at
``/api/schema/``, is generated from them), and the search page reads its form and renders its results with
the same ones: there is no second statement of what a search takes or returns.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time
from typing import Any, Literal, cast

from ninja import Field, Schema
from pydantic import model_validator

from retrieval_core.index.filters import MAX_RADIUS_M, GeoRadius, SearchFilters, epoch_seconds
from retrieval_core.rerank.scorer import RerankMethod
from retrieval_core.search.geolocation import Location
from retrieval_core.search.recognition import Recognition
from webapp.validation import DatabaseId

__all__ = [
    "FILTER_FIELDS",
    "AppliedFilters",
    "Hit",
    "LandmarkRef",
    "LocationOut",
    "Position",
    "Prediction",
    "QueryInfo",
    "RerankInfo",
    "SearchParams",
    "SearchResult",
]

FILTER_FIELDS = ("landmark", "taken_after", "taken_before", "lat", "lon", "radius_m")


class SearchParams(Schema):
    """``k``, ``rerank`` and the filters, from a form or a query string (an empty value means "not set").
    Ranges the domain checks itself (a latitude, a longitude) are validated by it, so its message is the
    one the client reads."""

    k: int | None = Field(None, ge=1, le=100, description="results (default SEARCH_TOP_K)")
    rerank: RerankMethod | None = Field(None, description="re-ranking method (default RERANK_METHOD)")
    landmark: DatabaseId | None = Field(None, description="only images of this landmark id")
    taken_after: date | None = Field(None, description="EXIF capture date on or after (UTC), YYYY-MM-DD")
    taken_before: date | None = Field(None, description="EXIF capture date on or before (UTC), YYYY-MM-DD")
    lat: float | None = Field(
        None, allow_inf_nan=False, json_schema_extra={"minimum": -90, "maximum": 90}, description="latitude"
    )
    lon: float | None = Field(
        None,
        allow_inf_nan=False,
        json_schema_extra={"minimum": -180, "maximum": 180},
        description="longitude",
    )
    radius_m: float | None = Field(
        None,
        gt=0,
        le=MAX_RADIUS_M,
        allow_inf_nan=False,
        description="with lat and lon: only images taken within this many metres",
    )

    @model_validator(mode="before")
    @classmethod
    def _empty_is_unset(cls, data: Any) -> Any:
        if isinstance(data, dict):
            return {
                name: None if isinstance(value, str) and not value.strip() else value
                for name, value in data.items()
            }
        return data

    @model_validator(mode="after")
    def _consistent(self) -> SearchParams:
        if self.taken_after and self.taken_before and self.taken_after > self.taken_before:
            raise ValueError("taken_after must not be later than taken_before")
        place = (self.lat, self.lon, self.radius_m)
        if any(value is not None for value in place) and not all(value is not None for value in place):
            raise ValueError("a place filter needs lat, lon and radius_m together")
        self.near()  # the domain's own range checks (latitude, longitude)
        return self

    def near(self) -> GeoRadius | None:
        if self.lat is None or self.lon is None or self.radius_m is None:
            return None
        return GeoRadius(self.lat, self.lon, self.radius_m)

    def filters(self) -> SearchFilters:
        """The filters Milvus applies (whether the landmark exists is the service's to check)."""
        after, before = self.taken_after, self.taken_before
        return SearchFilters(
            landmark_id=self.landmark,
            taken_from=None if after is None else epoch_seconds(datetime.combine(after, time.min, UTC)),
            taken_to=None if before is None else epoch_seconds(datetime.combine(before, time.max, UTC)),
            near=self.near(),
        )


class LandmarkRef(Schema):
    id: int
    name: str


class Position(Schema):
    latitude: float
    longitude: float

    @classmethod
    def of(cls, position: tuple[float, float] | None) -> Position | None:
        return None if position is None else cls(latitude=position[0], longitude=position[1])


class LocationOut(Schema):
    """Where the photo was taken, estimated from the positions (EXIF GPS or labels.csv) of its re-ranked
    matches; null when it cannot be (``location_reason`` says why)."""

    latitude: float = Field(ge=-90, le=90)
    longitude: float = Field(ge=-180, le=180)
    radius_m: float = Field(ge=0, description="How far the supporting matches spread around it, in metres.")
    confidence: float = Field(
        ge=0, le=1, description="Calibrated probability that it is within 25 m of the truth."
    )
    supporting_image_ids: list[int] = Field(
        min_length=1, description="The matches the position rests on, strongest first."
    )
    method: Literal["verified_group", "agreeing_matches", "first_result", "best_match"] = Field(
        description="verified_group: verified matches at one place; agreeing_matches: several near-best "
        "matches at one place, none verified; first_result / best_match: one match's position, nothing "
        "agreeing with it."
    )

    @classmethod
    def of(cls, location: Location) -> LocationOut:
        return cls(
            latitude=round(location.latitude, 7),
            longitude=round(location.longitude, 7),
            radius_m=round(location.radius_m, 1),
            confidence=location.confidence,
            supporting_image_ids=[int(cast(int, pk)) for pk in location.supporting_image_ids],
            method=location.method,
        )


class Vote(Schema):
    landmark: LandmarkRef | None
    weight: float


class Evidence(Schema):
    best_guess: LandmarkRef | None
    weighted_by: Literal["inliers", "score"]
    voters: list[int]
    inliers: int | None
    votes: list[Vote]
    threshold: float


class Prediction(Schema):
    landmark: LandmarkRef | None = Field(description="null: not in the collection")
    confidence: float = Field(ge=0, le=1)
    recognised: bool
    evidence: Evidence

    @classmethod
    def of(cls, p: Recognition, names: dict[int, str], threshold: float) -> Prediction:
        """``landmark`` is None below the threshold; the best guess and the votes say what came closest."""

        def ref(landmark_id: object) -> LandmarkRef | None:
            if landmark_id is None:
                return None
            pk = cast(int, landmark_id)
            return LandmarkRef(id=pk, name=names.get(pk, ""))

        return cls(
            landmark=ref(p.landmark) if p.recognised else None,
            confidence=round(p.confidence, 4),
            recognised=p.recognised,
            evidence=Evidence(
                best_guess=ref(p.landmark),
                weighted_by=cast(Literal["inliers", "score"], p.weighted_by),
                voters=[int(cast(int, voter)) for voter in p.voters],
                inliers=p.inliers,
                votes=[
                    Vote(landmark=ref(label), weight=round(weight, 4))
                    for label, weight in sorted(p.votes.items(), key=lambda item: -item[1])
                ],
                threshold=threshold,
            ),
        )


class Hit(Schema):
    rank: int = Field(ge=1)
    image_id: int
    score: float
    global_score: float
    local_score: float | None
    global_rank: int = Field(ge=1)
    inliers: int | None
    landmark: LandmarkRef | None
    image_url: str
    thumbnail_url: str
    page_url: str
    position: Position | None


class QueryInfo(Schema):
    width: int
    height: int
    id: str | None = Field(description="the kept query photo (its match drawings), if any")
    image_id: int | None = Field(description='"more like this": the collection image searched from')
    position: Position | None


class AppliedFilters(Schema):
    """The filters the search applied; a filter that was not set is absent."""

    landmark: int | None = None
    taken_after: date | None = None
    taken_before: date | None = None
    lat: float | None = None
    lon: float | None = None
    radius_m: float | None = None

    @classmethod
    def of(cls, filters: SearchFilters | None) -> AppliedFilters:
        applied: dict[str, object] = {}
        if filters is not None and filters.landmark_id is not None:
            applied["landmark"] = filters.landmark_id
        if filters is not None and filters.taken_from is not None:
            applied["taken_after"] = datetime.fromtimestamp(filters.taken_from, UTC).date()
        if filters is not None and filters.taken_to is not None:
            applied["taken_before"] = datetime.fromtimestamp(filters.taken_to, UTC).date()
        if filters is not None and filters.near is not None:
            near = filters.near
            applied.update(lat=near.latitude, lon=near.longitude, radius_m=near.radius_m)
        return cls.model_validate(applied)


class RerankInfo(Schema):
    method: RerankMethod
    weight_global: float
    min_inliers: int = Field(description="Inliers from which a result counts as a verified match.")


class SearchResult(Schema):
    """Ranked results with their evidence, the predicted landmark and the estimated place."""

    model_version: str
    query: QueryInfo
    filters: AppliedFilters
    prediction: Prediction
    location: LocationOut | None
    location_reason: str | None = Field(
        description="Why location is null (the collection has no positions, none of the best matches has "
        "one); null when there is a location."
    )
    rerank: RerankInfo
    timings_ms: dict[str, float]
    results: list[Hit]

    def as_page(self) -> dict[str, Any]:
        """The JSON the search page renders (and embeds for its script): the API's answer, as sent."""
        return self.model_dump(mode="json", exclude_unset=True)
