"""Where a collection's photos were taken: ``latitude,longitude`` columns of ``labels.csv``, else the photo's
EXIF GPS. The catalogue, the evaluation and geolocation read positions through these functions, so a
collection whose GPS is not in EXIF is located the same way everywhere."""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable
from pathlib import Path

from PIL import ExifTags
from PIL import Image as PILImage

__all__ = [
    "EARTH_RADIUS_M",
    "Position",
    "collection_positions",
    "distance_m",
    "exif_position",
    "photo_position",
    "valid_position",
]

logger = logging.getLogger(__name__)

Position = tuple[float, float]
"""``(latitude, longitude)`` in degrees (WGS84)."""

EARTH_RADIUS_M = 6_371_008.8
"""Mean Earth radius (IUGG), in metres."""


def distance_m(a: Position, b: Position) -> float:
    """Great-circle (haversine) distance in metres between two ``(latitude, longitude)`` positions."""
    lat1, lon1, lat2, lon2 = map(math.radians, (*a, *b))
    h = math.sin((lat2 - lat1) / 2) ** 2 + math.cos(lat1) * math.cos(lat2) * math.sin((lon2 - lon1) / 2) ** 2
    return 2 * EARTH_RADIUS_M * math.asin(min(1.0, math.sqrt(h)))


def valid_position(latitude: float, longitude: float) -> bool:
    return -90.0 <= latitude <= 90.0 and -180.0 <= longitude <= 180.0


def exif_position(exif: PILImage.Exif) -> Position | None:
    """The GPS IFD's position; None when absent or out of range. Raises on malformed values (the caller
    decides whether that is worth a warning)."""
    gps = exif.get_ifd(ExifTags.IFD.GPSInfo)
    if not gps:
        return None
    latitude = _degrees(gps.get(ExifTags.GPS.GPSLatitude), gps.get(ExifTags.GPS.GPSLatitudeRef), "S")
    longitude = _degrees(gps.get(ExifTags.GPS.GPSLongitude), gps.get(ExifTags.GPS.GPSLongitudeRef), "W")
    if latitude is None or longitude is None or not valid_position(latitude, longitude):
        return None
    return latitude, longitude


def photo_position(path: Path) -> Position | None:
    """EXIF GPS of the photo file at ``path``; None when it has none or cannot be read."""
    try:
        with PILImage.open(path) as image:
            return exif_position(image.getexif())
    except Exception as error:  # a broken file or EXIF block: no position, said in the log
        logger.warning("no GPS read from %s: %s", path, error)
        return None


def collection_positions(items: Iterable[tuple[str, Path, Position | None]]) -> dict[str, Position]:
    """``(relpath, path, position from labels.csv or None)`` -> relpath -> position, for the photos that
    have one (``labels.csv`` wins over EXIF)."""
    found: dict[str, Position] = {}
    for relpath, path, given in items:
        position = given if given is not None else photo_position(path)
        if position is not None:
            found[relpath] = position
    return found


def _degrees(dms: object, ref: object, negative_ref: str) -> float | None:
    if dms is None:
        return None
    degrees, minutes, seconds = (float(part) for part in dms)  # type: ignore[attr-defined]
    value = degrees + minutes / 60 + seconds / 3600
    text = ref.decode("ascii", "replace") if isinstance(ref, bytes) else str(ref or "")
    return -value if text.replace("\x00", "").strip().upper() == negative_ref else value
