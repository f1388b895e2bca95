"""Search filters over the scalar fields stored next to each vector, as Milvus boolean expressions.

The fields (``MilvusVectorStore``'s schema): ``landmark_id`` (INT64, -1 unknown), ``taken_at`` (INT64 unix
seconds of the EXIF capture time, ``UNKNOWN_TIME`` when unknown) and ``gx, gy, gz`` (DOUBLE: the capture
position on the unit sphere, ``(0, 0, 0)`` when unknown). Milvus applies the expression before it takes the
top-k, so a filtered search returns the best k among the matching images, not a filtered short list.

"Within R metres of (lat, lon)" is a chord-distance bound on the unit sphere,
``(gx - x)^2 + (gy - y)^2 + (gz - z)^2 <= c^2`` with ``c = 2 sin(R / 2 E)`` and E the Earth's mean radius:
exact for the great-circle distance, and an image without GPS (at the sphere's centre, chord 1) never
matches since R is at most ``MAX_RADIUS_M`` (chord < 1). Milvus standalone and cluster cannot evaluate
arithmetic between two fields (milvus-io/milvus#39629; only Milvus Lite can), so the expression sent to
Milvus is the box ``|gx - x| <= c, |gy - y| <= c, |gz - z| <= c`` around the ball, which every Milvus
evaluates, and the store keeps only the hits that ``GeoRadius.contains`` (``MilvusVectorStore.search``
widens its search until k hits pass). The box holds the ball, so no matching image is lost.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cached_property

from retrieval_core.datasets.positions import EARTH_RADIUS_M

__all__ = [
    "EARTH_RADIUS_M",
    "GEO_FIELDS",
    "MAX_RADIUS_M",
    "UNKNOWN_TIME",
    "GeoRadius",
    "SearchFilters",
    "epoch_seconds",
    "unit_sphere",
]

MAX_RADIUS_M = 5_000_000.0
"""Largest radius accepted: its chord (about 0.74) stays below 1, the chord of a position-less image."""
GEO_FIELDS = ("gx", "gy", "gz")
"""The stored position's fields (unit sphere)."""
UNKNOWN_TIME = -(2**62)
"""``taken_at`` of an image without a capture time (below every real date)."""


def unit_sphere(latitude: float, longitude: float) -> tuple[float, float, float]:
    """(lat, lon) in degrees -> (x, y, z) on the unit sphere."""
    lat, lon = math.radians(latitude), math.radians(longitude)
    return (math.cos(lat) * math.cos(lon), math.cos(lat) * math.sin(lon), math.sin(lat))


def epoch_seconds(moment: datetime) -> int:
    """Unix seconds of a datetime (naive ones are taken as UTC)."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp())


@dataclass(frozen=True)
class GeoRadius:
    """Within ``radius_m`` metres (great circle) of ``(latitude, longitude)`` in degrees."""

    latitude: float
    longitude: float
    radius_m: float

    def __post_init__(self) -> None:
        if not -90.0 <= self.latitude <= 90.0:
            raise ValueError(f"latitude must be between -90 and 90, got {self.latitude}")
        if not -180.0 <= self.longitude <= 180.0:
            raise ValueError(f"longitude must be between -180 and 180, got {self.longitude}")
        if not 0.0 < self.radius_m <= MAX_RADIUS_M:
            raise ValueError(
                f"radius must be more than 0 and at most {MAX_RADIUS_M:.0f} m, got {self.radius_m}"
            )

    @cached_property
    def chord(self) -> float:
        """Straight-line distance through the unit sphere that ``radius_m`` along its surface spans."""
        return 2.0 * math.sin(self.radius_m / (2.0 * EARTH_RADIUS_M))

    @cached_property
    def centre(self) -> tuple[float, float, float]:
        """The centre on the unit sphere, computed once: `contains` runs for every hit a search returns."""
        return unit_sphere(self.latitude, self.longitude)

    def expression(self) -> str:
        """The box around the ball, in single-field comparisons that every Milvus evaluates."""
        half = self.chord
        return " and ".join(
            f"{field} >= {value - half!r} and {field} <= {value + half!r}"
            for field, value in zip(GEO_FIELDS, self.centre, strict=True)
        )

    def contains(self, gx: float, gy: float, gz: float) -> bool:
        """Whether a stored position (unit sphere; ``(0, 0, 0)``: unknown) lies within the radius."""
        x, y, z = self.centre
        return (gx - x) ** 2 + (gy - y) ** 2 + (gz - z) ** 2 <= self.chord**2


@dataclass(frozen=True)
class SearchFilters:
    """Landmark, capture-time range (inclusive unix seconds, either end open) and a radius; all optional."""

    landmark_id: int | None = None
    taken_from: int | None = None
    taken_to: int | None = None
    near: GeoRadius | None = None

    def __post_init__(self) -> None:
        if self.taken_from is not None and self.taken_to is not None and self.taken_from > self.taken_to:
            raise ValueError("the start of the date range is after its end")

    def __bool__(self) -> bool:
        return any(v is not None for v in (self.landmark_id, self.taken_from, self.taken_to, self.near))

    def expression(self) -> str:
        """The Milvus boolean expression ("" when nothing is filtered). With a radius it admits a box
        around it: keep only the hits whose position ``near.contains``."""
        clauses = []
        if self.landmark_id is not None:
            clauses.append(f"landmark_id == {int(self.landmark_id)}")
        if self.taken_from is not None or self.taken_to is not None:
            clauses.append(f"taken_at > {UNKNOWN_TIME}")
        if self.taken_from is not None:
            clauses.append(f"taken_at >= {int(self.taken_from)}")
        if self.taken_to is not None:
            clauses.append(f"taken_at <= {int(self.taken_to)}")
        if self.near is not None:
            clauses.append(self.near.expression())
        return " and ".join(f"({clause})" for clause in clauses)
