"""Where the collection's photos were taken: the context the search page's map draws under a search's
results and location estimate (faint dots and the collection's bounding area), built from the collection's
own GPS positions so the map needs no tile server.

The list is bounded (``MAX_POSITIONS``: the page fetches it whole) and cached under a fingerprint of the
positioned, indexed photos (their count, newest id and last indexing time), so an import or a removal shows
at once while repeated page loads cost one aggregate query.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.core.cache import cache
from django.db.models import Count, Max, Min, QuerySet

from webapp.catalog.models import Image

__all__ = ["MAX_POSITIONS", "CollectionPositions", "collection_positions"]

MAX_POSITIONS = 2000
"""Dots sent at most (about 40 kB of JSON); a larger collection is thinned evenly, its bounds stay exact."""
DECIMALS = 5  # about 1 m: finer adds bytes, not context
CACHE_SECONDS = 600  # the fingerprint catches imports; this bounds staleness of an edited position


@dataclass(frozen=True)
class CollectionPositions:
    """Distinct rounded positions (``[latitude, longitude]``), how many indexed photos have one, and the
    bounding area of all of them (south, west, north, east; None without positions)."""

    positions: list[tuple[float, float]]
    photos: int
    bounds: tuple[float, float, float, float] | None
    thinned: bool = False  # more distinct positions than the limit: every k-th is sent

    def as_dict(self) -> dict[str, object]:
        sides = ("south", "west", "north", "east")
        return {
            "photos": self.photos,
            "positions": [list(p) for p in self.positions],
            "thinned": self.thinned,
            "bounds": None if self.bounds is None else dict(zip(sides, self.bounds, strict=True)),
        }


def _positioned() -> QuerySet[Image]:
    """Photos a search can return that have a position (the same ones the location estimate uses)."""
    return Image.objects.filter(
        status=Image.Status.INDEXED, exif__latitude__isnull=False, exif__longitude__isnull=False
    )


def collection_positions(limit: int = MAX_POSITIONS) -> CollectionPositions:
    """The context layer's data, cached until the positioned photos change."""
    summary = _positioned().aggregate(
        photos=Count("pk"),
        newest=Max("pk"),
        indexed=Max("indexed_at"),
        south=Min("exif__latitude"),
        west=Min("exif__longitude"),
        north=Max("exif__latitude"),
        east=Max("exif__longitude"),
    )
    indexed = summary["indexed"].isoformat() if summary["indexed"] else ""
    key = f"catalog:photo-positions:{limit}:{summary['photos']}:{summary['newest']}:{indexed}"
    cached = cache.get(key)
    if isinstance(cached, CollectionPositions):
        return cached
    bounds = None
    if summary["photos"]:
        bounds = (summary["south"], summary["west"], summary["north"], summary["east"])
    positions, thinned = _distinct_positions(limit)
    result = CollectionPositions(positions, summary["photos"], bounds, thinned)
    cache.set(key, result, CACHE_SECONDS)
    return result


def _distinct_positions(limit: int) -> tuple[list[tuple[float, float]], bool]:
    """Rounded positions in id order without repeats; every k-th when there are more than ``limit``."""
    seen: dict[tuple[float, float], None] = {}
    rows = _positioned().order_by("pk").values_list("exif__latitude", "exif__longitude")
    for latitude, longitude in rows.iterator(chunk_size=5000):
        if latitude is None or longitude is None:  # excluded by the filter; the column types allow it
            continue
        seen.setdefault((round(latitude, DECIMALS), round(longitude, DECIMALS)), None)
    distinct = list(seen)
    if len(distinct) <= limit:
        return distinct, False
    step = len(distinct) / limit
    return [distinct[int(i * step)] for i in range(limit)], True
