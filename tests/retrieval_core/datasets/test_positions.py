from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from retrieval_core.datasets import CollectionFormatError, read_collection
from retrieval_core.datasets.positions import collection_positions, photo_position


def _photo(path: Path, gps: tuple[float, float] | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    image = Image.new("RGB", (32, 24), (120, 140, 160))
    exif = Image.Exif()
    if gps is not None:
        lat, lon = gps
        exif[0x8825] = {
            1: "N" if lat >= 0 else "S",
            2: (abs(lat), 0.0, 0.0),
            3: "E" if lon >= 0 else "W",
            4: (abs(lon), 0.0, 0.0),
        }
    image.save(path, exif=exif)
    return path


def test_labels_csv_positions_win_over_exif_and_exif_fills_the_rest(tmp_path: Path) -> None:
    _photo(tmp_path / "a.jpg", gps=(10.5, -20.25))
    _photo(tmp_path / "b.jpg", gps=(1.0, 1.0))
    _photo(tmp_path / "c.jpg")
    (tmp_path / "labels.csv").write_text(
        "image,landmark,latitude,longitude\na.jpg,,,\nb.jpg,x,-33.5,151.25\nc.jpg,,,\n", encoding="utf-8"
    )
    items = read_collection(tmp_path)
    assert [item.position for item in items] == [None, (-33.5, 151.25), None]
    positions = collection_positions((i.relpath, i.path, i.position) for i in items)
    assert positions == {"a.jpg": (10.5, -20.25), "b.jpg": (-33.5, 151.25)}


@pytest.mark.parametrize(
    ("row", "message"),
    [("a.jpg,,12.5,", "decimal degrees"), ("a.jpg,,north,3", "decimal degrees"), ("a.jpg,,95,3", "on Earth")],
)
def test_half_or_impossible_positions_are_refused(tmp_path: Path, row: str, message: str) -> None:
    _photo(tmp_path / "a.jpg")
    (tmp_path / "labels.csv").write_text(f"image,landmark,latitude,longitude\n{row}\n", encoding="utf-8")
    with pytest.raises(CollectionFormatError, match=message):
        read_collection(tmp_path)


def test_unreadable_photo_has_no_position(tmp_path: Path) -> None:
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"not a photo")
    assert photo_position(broken) is None
    assert photo_position(_photo(tmp_path / "south.jpg", gps=(-12.0, 30.0))) == pytest.approx((-12.0, 30.0))
