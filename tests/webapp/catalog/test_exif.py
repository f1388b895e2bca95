"""EXIF parsing on generated JPEGs, including GPS and a broken block."""

from __future__ import annotations

import io
from datetime import UTC, datetime

import numpy as np
import pytest
from PIL import ExifTags
from PIL import Image as PILImage

from tests.phone_photos import LATITUDE, LONGITUDE, PHONE_FORMATS, TAKEN_AT, encode_phone_photo
from webapp.catalog.exif import read_exif


def _jpeg_with_exif(exif: PILImage.Exif | bytes) -> PILImage.Image:
    buffer = io.BytesIO()
    PILImage.fromarray(np.full((32, 48, 3), 120, np.uint8)).save(buffer, format="JPEG", exif=exif)
    buffer.seek(0)
    return PILImage.open(buffer)


def test_reads_date_camera_orientation_and_gps() -> None:
    exif = PILImage.Exif()
    exif[ExifTags.Base.Make] = "Canon"
    exif[ExifTags.Base.Model] = "EOS 5D"
    exif[ExifTags.Base.Orientation] = 6
    exif.get_ifd(ExifTags.IFD.Exif)[ExifTags.Base.DateTimeOriginal] = "2019:07:14 18:05:09"
    gps = exif.get_ifd(ExifTags.IFD.GPSInfo)
    gps[ExifTags.GPS.GPSLatitudeRef] = "N"
    gps[ExifTags.GPS.GPSLatitude] = (48.0, 51.0, 29.6)
    gps[ExifTags.GPS.GPSLongitudeRef] = "W"
    gps[ExifTags.GPS.GPSLongitude] = (2.0, 17.0, 40.2)
    data = read_exif(_jpeg_with_exif(exif))
    assert data.camera_make == "Canon" and data.camera_model == "EOS 5D"
    assert data.orientation == 6
    assert data.taken_at == datetime(2019, 7, 14, 18, 5, 9, tzinfo=UTC)
    assert abs(data.latitude - (48 + 51 / 60 + 29.6 / 3600)) < 1e-6
    assert abs(data.longitude + (2 + 17 / 60 + 40.2 / 3600)) < 1e-6


def test_broken_exif_yields_empty_fields_not_an_error() -> None:
    garbage = b"Exif\x00\x00MM\x00*\x00\x00\x00\x08\xff\xff" + b"\x13" * 40
    data = read_exif(_jpeg_with_exif(garbage))
    assert data.taken_at is None and data.latitude is None


def test_bad_date_and_out_of_range_gps_are_dropped() -> None:
    exif = PILImage.Exif()
    exif.get_ifd(ExifTags.IFD.Exif)[ExifTags.Base.DateTimeOriginal] = "0000:00:00 00:00:00"
    gps = exif.get_ifd(ExifTags.IFD.GPSInfo)
    gps[ExifTags.GPS.GPSLatitude] = (123.0, 0.0, 0.0)
    gps[ExifTags.GPS.GPSLongitude] = (2.0, 0.0, 0.0)
    data = read_exif(_jpeg_with_exif(exif))
    assert data.taken_at is None
    assert data.latitude is None and data.longitude is None


@pytest.mark.parametrize("image_format", PHONE_FORMATS)
def test_phone_photos_keep_time_gps_orientation_and_camera(image_format: str) -> None:
    """HEIC's decoder applies the orientation itself and reports 1: the catalogue keeps the original 6."""
    data = encode_phone_photo(np.full((32, 48, 3), 120, np.uint8), image_format, orientation=6)
    with PILImage.open(io.BytesIO(data)) as image:
        assert image.format == image_format
        exif = read_exif(image)
    assert exif.taken_at == TAKEN_AT
    assert exif.orientation == 6
    assert exif.camera_make == "Apple" and exif.camera_model == "iPhone 15"
    assert abs(exif.latitude - LATITUDE) < 1e-6 and abs(exif.longitude - LONGITUDE) < 1e-6
