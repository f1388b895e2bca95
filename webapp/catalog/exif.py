"""Read the EXIF fields the catalogue keeps; malformed EXIF yields empty fields, never an error."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime

from PIL import ExifTags
from PIL import Image as PILImage

from retrieval_core.datasets.positions import exif_position

logger = logging.getLogger(__name__)

_EXIF_IFD = ExifTags.IFD.Exif
_DATETIME_ORIGINAL = ExifTags.Base.DateTimeOriginal
_DATETIME = ExifTags.Base.DateTime


@dataclass(frozen=True)
class ExifData:
    taken_at: datetime | None = None
    camera_make: str = ""
    camera_model: str = ""
    latitude: float | None = None
    longitude: float | None = None
    orientation: int | None = None


def read_exif(image: PILImage.Image) -> ExifData:
    """EXIF of an opened (not necessarily decoded) PIL image."""
    try:
        exif = image.getexif()
    except Exception as error:
        logger.warning("unreadable EXIF block: %s", error)
        return ExifData()
    fields: dict[str, object] = {}
    for name, reader in (
        ("taken_at", _taken_at),
        ("camera_make", lambda e: _text(e.get(ExifTags.Base.Make))),
        ("camera_model", lambda e: _text(e.get(ExifTags.Base.Model))),
        ("orientation", lambda e: _orientation(e, image.info.get("original_orientation"))),
    ):
        try:
            fields[name] = reader(exif)
        except Exception as error:
            logger.warning("ignoring malformed EXIF %s: %s", name, error)
    try:
        fields["latitude"], fields["longitude"] = exif_position(exif) or (None, None)
    except Exception as error:
        logger.warning("ignoring malformed EXIF GPS: %s", error)
    return ExifData(**fields)  # type: ignore[arg-type]  # each field from its reader above


def _text(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    return str(value).replace("\x00", "").strip()[:128]


def _taken_at(exif: PILImage.Exif) -> datetime | None:
    raw = exif.get_ifd(_EXIF_IFD).get(_DATETIME_ORIGINAL) or exif.get(_DATETIME)
    text = _text(raw)
    if not text:
        return None
    try:
        # EXIF has no time zone; store it as UTC so capture hours stay as the camera showed them.
        return datetime.strptime(text[:19], "%Y:%m:%d %H:%M:%S").replace(tzinfo=UTC)
    except ValueError:
        logger.warning("ignoring EXIF date %r", text)
        return None


def _orientation(exif: PILImage.Exif, original: int | None = None) -> int | None:
    """``original``: the orientation a HEIF decoder applied itself (its EXIF then says 1)."""
    value = exif.get(ExifTags.Base.Orientation) if original is None else original
    if value is None:
        return None
    value = int(value)
    return value if 1 <= value <= 8 else None
