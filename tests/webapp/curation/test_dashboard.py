"""The dataset dashboard on a collection imported with EXIF (date, camera, GPS) and a broken EXIF block."""

from __future__ import annotations

import io
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest
from django.test import Client
from PIL import ExifTags
from PIL import Image as PILImage

from webapp.catalog.models import Image, ImageExif
from webapp.catalog.services import import_collection
from webapp.curation.models import ImageAnalysis
from webapp.curation.selectors import dataset_overview

pytestmark = [pytest.mark.django_db, pytest.mark.filterwarnings("ignore:Corrupt EXIF data")]
BROKEN_EXIF = b"Exif\x00\x00MM\x00*\x00\x00\x00\x08\xff\xff" + b"\x13" * 40


def _exif(make: str, model: str, taken: str, lat: tuple[float, float, float] | None = None) -> PILImage.Exif:
    exif = PILImage.Exif()
    exif[ExifTags.Base.Make] = make
    exif[ExifTags.Base.Model] = model
    exif.get_ifd(ExifTags.IFD.Exif)[ExifTags.Base.DateTimeOriginal] = taken
    if lat is not None:
        gps = exif.get_ifd(ExifTags.IFD.GPSInfo)
        gps[ExifTags.GPS.GPSLatitudeRef] = "N"
        gps[ExifTags.GPS.GPSLatitude] = lat
        gps[ExifTags.GPS.GPSLongitudeRef] = "E"
        gps[ExifTags.GPS.GPSLongitude] = (2.0, 17.0, 40.2)
    return exif


def _write(path: Path, content: bytes, exif: PILImage.Exif | bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    PILImage.open(io.BytesIO(content)).save(buffer, format="JPEG", exif=exif)
    path.write_bytes(buffer.getvalue())


@pytest.fixture
def imported(tmp_path: Path, photo: Callable[..., bytes]) -> Path:
    _write(
        tmp_path / "Eiffel" / "a.jpg",
        photo(1),
        _exif("Canon", "Canon EOS 5D", "2019:07:14 18:05:09", (48, 51, 29.6)),
    )
    _write(
        tmp_path / "Eiffel" / "b.jpg",
        photo(2),
        _exif("Canon", "Canon EOS 5D", "2021:12:01 09:30:00", (48, 51, 30.0)),
    )
    _write(tmp_path / "Eiffel" / "broken.jpg", photo(3), BROKEN_EXIF)
    _write(tmp_path / "Louvre" / "c.jpg", photo(4), _exif("NIKON", "D750", "2019:07:20 18:45:00"))
    report = import_collection(tmp_path)
    assert (report.created, report.failed) == (4, [])
    return tmp_path


def test_import_reads_exif_and_tolerates_a_broken_block(imported: Path) -> None:
    exif = {row.image.source: row for row in ImageExif.objects.select_related("image")}
    assert exif["Eiffel/a.jpg"].taken_at == datetime(2019, 7, 14, 18, 5, 9, tzinfo=UTC)
    assert abs(exif["Eiffel/a.jpg"].latitude - (48 + 51 / 60 + 29.6 / 3600)) < 1e-6
    assert (exif["Louvre/c.jpg"].camera_make, exif["Louvre/c.jpg"].latitude) == ("NIKON", None)
    broken = exif["Eiffel/broken.jpg"]
    assert (broken.taken_at, broken.camera_model, broken.latitude) == (None, "", None)


def test_overview_counts_what_the_dashboard_plots(imported: Path) -> None:
    gray = Image.objects.get(source="Eiffel/b.jpg")
    ImageAnalysis.objects.create(image=gray, is_grayscale=True, quality_analysed_at=gray.created_at)
    overview = dataset_overview()
    assert (overview.images, overview.landmarks, overview.analysed) == (4, 2, 1)
    assert overview.top_landmarks == [("Eiffel", 3), ("Louvre", 1)]
    assert dict(overview.landmark_sizes)["1"] == 1 and dict(overview.landmark_sizes)["3-5"] == 1
    assert dict(overview.flags)["grayscale"] == 1
    assert overview.years == [("2019", 2), ("2021", 1)]
    assert dict(overview.months)["Jul"] == 2 and dict(overview.months)["Dec"] == 1
    assert dict(overview.hours)["18"] == 2 and dict(overview.hours)["09"] == 1
    assert overview.cameras == [("Canon EOS 5D", 2), ("NIKON D750", 1)]
    assert len(overview.gps_points) == overview.with_gps == 2
    assert all(abs(lon - 2.2945) < 0.01 and abs(lat - 48.858) < 0.01 for lon, lat in overview.gps_points)


def test_dashboard_page_draws_inline_charts_for_everyone(
    imported: Path, client: Client, curator_client: Client
) -> None:
    response = client.get("/dataset/")
    assert response.status_code == 200
    page = response.content.decode()
    assert page.count("<svg") == 8
    assert "Canon EOS 5D" in page and "<title>2019: 2</title>" in page
    assert page.count("<circle") == 2  # one dot per GPS position
    assert "http" not in page.replace('xmlns="http://www.w3.org/2000/svg"', "")  # nothing from elsewhere
    assert "Recent curation actions" not in page  # the curation panel is for curators

    curator_page = curator_client.get("/dataset/").content.decode()
    assert "Recent curation actions" in curator_page and "Landmarks to review" in curator_page


def test_dashboard_of_an_empty_collection(client: Client) -> None:
    response = client.get("/dataset/")
    assert response.status_code == 200
    assert "No data yet." in response.content.decode()
