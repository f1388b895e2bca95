"""The search map's context layer: where the collection's indexed photos were taken, bounded, current after
an import, and served to the page as JSON."""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from webapp.catalog.models import Image, ImageExif
from webapp.catalog.photo_positions import collection_positions

pytestmark = pytest.mark.django_db


def _photo(n: int, position: tuple[float, float] | None, status: str = Image.Status.INDEXED) -> Image:
    image = Image.objects.create(
        file=f"images/{n}.jpg", sha256=f"{n:064d}", width=64, height=48, file_size=1000, format="JPEG",
        status=status, indexed_at=timezone.now() if status == Image.Status.INDEXED else None,
    )  # fmt: skip
    latitude, longitude = position if position else (None, None)
    ImageExif.objects.create(image=image, latitude=latitude, longitude=longitude)
    return image


def test_only_indexed_photos_with_a_position_repeats_once_and_exact_bounds() -> None:
    _photo(1, (17.4460, 78.3490))
    _photo(2, (17.446001, 78.349001))  # the same place to a metre: one dot
    _photo(3, (17.4520, 78.3410))
    _photo(4, None)  # no GPS
    _photo(5, (40.0, 10.0), Image.Status.PENDING)  # not searchable yet
    _photo(6, (41.0, 11.0), Image.Status.EXCLUDED)  # removed by a curator

    found = collection_positions()

    assert found.photos == 3
    assert found.positions == [(17.446, 78.349), (17.452, 78.341)]
    assert found.bounds == (17.4460, 78.3410, 17.4520, 78.349001)
    assert not found.thinned


def test_a_new_photo_shows_at_once_despite_the_cache() -> None:
    _photo(1, (10.0, 20.0))
    assert collection_positions().positions == [(10.0, 20.0)]
    _photo(2, (11.0, 21.0))
    assert collection_positions().positions == [(10.0, 20.0), (11.0, 21.0)]


def test_a_large_collection_is_thinned_evenly_and_keeps_its_whole_area() -> None:
    for n in range(10):
        _photo(n, (float(n), float(-n)))

    found = collection_positions(limit=4)

    assert found.thinned and len(found.positions) == 4
    assert found.positions[0] == (0.0, 0.0) and len(set(found.positions)) == 4
    assert found.bounds == (0.0, -9.0, 9.0, 0.0)  # from every photo, not only the dots sent


def test_the_page_fetches_them_as_json_that_browsers_keep_a_while(client: Client) -> None:
    _photo(1, (17.4460, 78.3490))
    url = reverse("search:map-positions")

    response = client.get(url)

    assert response.status_code == 200
    assert response.json() == {
        "photos": 1,
        "positions": [[17.446, 78.349]],
        "thinned": False,
        "bounds": {"south": 17.446, "west": 78.349, "north": 17.446, "east": 78.349},
    }
    assert "max-age=60" in response["Cache-Control"]
    assert client.post(url).status_code == 405


def test_an_empty_collection_has_no_area(client: Client) -> None:
    assert client.get(reverse("search:map-positions")).json() == {
        "photos": 0, "positions": [], "thinned": False, "bounds": None,
    }  # fmt: skip
