"""import_images reads every supported layout, registers once, and reports what it could not read."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command
from PIL import Image as PILImage

from retrieval_core.datasets.synthetic import make_scene
from webapp.catalog.models import Image, Landmark

pytestmark = pytest.mark.django_db


def _jpeg(path: Path, seed: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    PILImage.fromarray(make_scene(seed, (60, 80))).save(path, format="JPEG")


def _import(root: Path) -> str:
    out = io.StringIO()
    call_command("import_images", str(root), "--no-wait", stdout=out, stderr=io.StringIO())
    return out.getvalue()


def test_labels_csv_with_splits_and_an_unreadable_file(tmp_path: Path) -> None:
    for i in range(3):
        _jpeg(tmp_path / "photos" / f"{i}.jpg", i)
    (tmp_path / "photos" / "broken.jpg").write_bytes(b"not a jpeg")
    (tmp_path / "labels.csv").write_text(
        "image,landmark,split\nphotos/0.jpg,Tower,train\nphotos/1.jpg,Tower,query\n"
        "photos/2.jpg,Bridge,\nphotos/broken.jpg,Bridge,train\n"
    )
    assert "3 new, 0 already registered, 1 unreadable" in _import(tmp_path)
    assert dict(Image.objects.values_list("source", "split")) == {
        "photos/0.jpg": "train",
        "photos/1.jpg": "query",
        "photos/2.jpg": "",
    }
    assert sorted(Landmark.objects.values_list("name", flat=True)) == ["Bridge", "Tower"]
    assert "0 new, 3 already registered" in _import(tmp_path)  # nothing twice
    assert Image.objects.count() == 3


def test_labels_csv_positions_are_stored_as_the_photos_positions(tmp_path: Path) -> None:
    for i in range(2):
        _jpeg(tmp_path / f"{i}.jpg", i)
    (tmp_path / "labels.csv").write_text("image,landmark,latitude,longitude\n0.jpg,,51.5,-0.125\n1.jpg,,,\n")
    assert "2 new" in _import(tmp_path)
    stored = {image.source: (image.exif.latitude, image.exif.longitude) for image in Image.objects.all()}
    assert stored == {"0.jpg": (51.5, -0.125), "1.jpg": (None, None)}


def test_gldv2_layout(tmp_path: Path) -> None:
    rows = []
    for i, image_id in enumerate(["abc123", "abd456", "fed789"]):
        _jpeg(tmp_path / "train" / image_id[0] / image_id[1] / image_id[2] / f"{image_id}.jpg", i)
        rows.append(f"{image_id},http://example.invalid/{image_id}.jpg,{1000 + i % 2}")
    (tmp_path / "train.csv").write_text("id,url,landmark_id\n" + "\n".join(rows) + "\n")
    assert "3 new" in _import(tmp_path)
    assert sorted(Landmark.objects.values_list("name", flat=True)) == ["1000", "1001"]
    image = Image.objects.get(source__endswith="abd456.jpg")
    assert image.landmark.name == "1001" and image.width == 80 and image.height == 60


def test_folder_that_is_no_collection_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(CommandError, match="not a folder"):
        call_command("import_images", str(tmp_path / "missing"), "--no-wait")
    (tmp_path / "empty").mkdir()
    with pytest.raises(CommandError, match=r"no labels\.csv, no GLDv2"):
        call_command("import_images", str(tmp_path / "empty"), "--no-wait")
    assert Image.objects.count() == 0
