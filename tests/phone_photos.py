"""Phone photos for tests: HEIC (iPhones' default) and AVIF files generated with the EXIF a phone writes
(capture time, GPS, orientation, camera), from any RGB array."""

from __future__ import annotations

import io
from datetime import UTC, datetime

import numpy as np
from PIL import ExifTags
from PIL import Image as PILImage

import retrieval_core.imaging  # noqa: F401  (registers the HEIF codec with PIL)

PHONE_FORMATS = ("HEIF", "AVIF")
TAKEN_AT = datetime(2024, 5, 1, 10, 11, 12, tzinfo=UTC)
LATITUDE = 48 + 51 / 60 + 29.6 / 3600  # 48°51'29.6" N
LONGITUDE = -(2 + 17 / 60 + 40.2 / 3600)  # 2°17'40.2" W


def phone_exif(orientation: int = 1) -> PILImage.Exif:
    exif = PILImage.Exif()
    exif[ExifTags.Base.Make] = "Apple"
    exif[ExifTags.Base.Model] = "iPhone 15"
    exif[ExifTags.Base.Orientation] = orientation
    exif.get_ifd(ExifTags.IFD.Exif)[ExifTags.Base.DateTimeOriginal] = TAKEN_AT.strftime("%Y:%m:%d %H:%M:%S")
    gps = exif.get_ifd(ExifTags.IFD.GPSInfo)
    gps[ExifTags.GPS.GPSLatitudeRef] = "N"
    gps[ExifTags.GPS.GPSLatitude] = (48.0, 51.0, 29.6)
    gps[ExifTags.GPS.GPSLongitudeRef] = "W"
    gps[ExifTags.GPS.GPSLongitude] = (2.0, 17.0, 40.2)
    return exif


def encode_phone_photo(array: np.ndarray, image_format: str, orientation: int = 1) -> bytes:
    """``(H, W, 3)`` uint8 RGB → a HEIF or AVIF file carrying `phone_exif`."""
    buffer = io.BytesIO()
    exif = phone_exif(orientation).tobytes()
    PILImage.fromarray(array).save(buffer, format=image_format, quality=90, exif=exif)
    return buffer.getvalue()
