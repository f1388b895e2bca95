"""Bad photos get a clear 4xx message from the API and the page; nothing crashes."""

from __future__ import annotations

import io

import numpy as np
import pytest
from django.test import Client
from PIL import Image as PILImage

from webapp import task_names

pytestmark = pytest.mark.django_db


def _png(width: int, height: int, mode: str = "1") -> bytes:
    buffer = io.BytesIO()
    PILImage.new(mode, (width, height)).save(buffer, format="PNG")
    return buffer.getvalue()


def _encoded(fmt: str) -> bytes:
    buffer = io.BytesIO()
    PILImage.fromarray(np.zeros((16, 16, 3), np.uint8)).save(buffer, format=fmt)
    return buffer.getvalue()


def _upload(client: Client, content: bytes, name: str = "photo.jpg", url: str = "/api/search/"):
    return client.post(url, {"image": _named(content, name)})


def _named(content: bytes, name: str) -> io.BytesIO:
    handle = io.BytesIO(content)
    handle.name = name
    return handle


@pytest.mark.parametrize(
    ("content", "status", "phrase"),
    [
        (b"", 400, "empty"),
        (b"this is a text file, not a photo" * 10, 400, "not an image"),
        (None, 400, "truncated"),  # filled in below: a JPEG cut in half
        (b"\x00" * (2 * 1024 * 1024 + 10), 413, "limit"),
        (_png(8000, 6000), 400, "mp"),  # decompression bomb: tiny file, 48 Mpx
        (_encoded("PPM"), 400, "format"),
    ],
    ids=["zero-byte", "not-an-image", "truncated", "too-large", "decompression-bomb", "unsupported-format"],
)
def test_api_refuses_bad_photos_with_a_clear_message(
    client: Client, scene_photo: bytes, content: bytes | None, status: int, phrase: str
) -> None:
    if content is None:
        content = scene_photo[: len(scene_photo) // 2]
    response = _upload(client, content)
    assert response.status_code == status
    assert phrase in response.json()["error"].lower()


def test_api_needs_an_image_field_and_a_sane_k(client: Client, scene_photo: bytes) -> None:
    assert client.post("/api/search/", {}).status_code == 400
    assert "'image'" in client.post("/api/search/", {}).json()["error"]
    bad_k = client.post("/api/search/", {"image": _named(scene_photo, "a.jpg"), "k": "lots"})
    assert bad_k.status_code == 400
    assert client.get("/api/search/").status_code == 405


def test_search_page_shows_the_error_instead_of_crashing(client: Client) -> None:
    response = _upload(client, b"GIF89a-but-not-really", url="/")
    assert response.status_code == 400
    assert b"not an image" in response.content.lower()


def test_collection_upload_keeps_good_photos_and_names_the_bad_ones(
    uploader_client: Client, scene_photo: bytes, django_capture_on_commit_callbacks
) -> None:
    from webapp.catalog.models import Image

    client = uploader_client

    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = client.post(
            "/collection/",
            {
                "photos": [_named(scene_photo, "good.jpg"), _named(b"nope", "bad.jpg")],
                "landmark": "Eiffel Tower",
            },
            follow=True,
        )
    assert response.status_code == 200
    page = response.content.decode()
    assert "1 photo(s) added" in page
    assert "bad.jpg" in page
    image = Image.objects.get()
    assert image.landmark.name == "Eiffel Tower"
    assert image.status == Image.Status.PENDING
    with image.thumbnail.open("rb") as thumb:
        assert max(PILImage.open(thumb).size) <= 320
    # Tasks (embedding, local features, ...) are dispatched only once the upload commits.
    sent = {callback.name: callback.args for callback in callbacks}
    assert sent[task_names.INDEX_IMAGES] == ([image.pk],)
    assert sent[task_names.EXTRACT_LOCAL_FEATURES] == ([image.pk],)
    progress = client.get("/api/collection/progress/", {"ids": str(image.pk)}).json()
    assert progress == {
        "total": 1,
        "indexed": 0,
        "pending": 1,
        "failed": 0,
        "local_features": 0,
        "percent": 0.0,
    }
    assert client.get(f"/images/{image.pk}/").status_code == 200
    assert client.get("/images/999999/").status_code == 404
    assert client.get("/api/collection/progress/", {"ids": "x"}).status_code == 400


def test_uploading_the_same_photo_twice_keeps_one_image(uploader_client: Client, scene_photo: bytes) -> None:
    from webapp.catalog.models import Image

    for _ in range(2):
        uploader_client.post("/collection/", {"photos": [_named(scene_photo, "same.jpg")]})
    assert Image.objects.count() == 1


def test_an_unreachable_vector_store_is_a_503_not_a_crash(
    client: Client, scene_photo: bytes, settings
) -> None:
    from webapp import localstack
    from webapp.embeddings import services

    services.clear_caches()
    settings.MILVUS_URI = f"http://127.0.0.1:{localstack.free_port()}"  # nothing listens there
    try:
        response = _upload(client, scene_photo)
    finally:
        services.clear_caches()
    assert response.status_code == 503
    assert "not reachable" in response.json()["error"]


@pytest.mark.parametrize(
    ("fields", "phrase"),
    [
        ({"landmark": "eiffel"}, "landmark must be"),
        ({"landmark": "999999"}, "no landmark with id"),
        ({"taken_after": "2020-13-01"}, "yyyy-mm-dd"),
        ({"taken_before": "yesterday"}, "yyyy-mm-dd"),
        ({"taken_after": "2021-01-01", "taken_before": "2020-01-01"}, "not be later"),
        ({"lat": "48.8", "lon": "2.3"}, "together"),
        ({"lat": "north", "lon": "2.3", "radius_m": "10"}, "lat must be a number"),
        ({"lat": "91", "lon": "2.3", "radius_m": "10"}, "latitude"),
        ({"lat": "48.8", "lon": "200", "radius_m": "10"}, "longitude"),
        ({"lat": "48.8", "lon": "2.3", "radius_m": "0"}, "radius_m"),
        ({"lat": "48.8", "lon": "2.3", "radius_m": "1e9"}, "radius_m"),
        ({"lat": "nan", "lon": "2.3", "radius_m": "10"}, "finite"),
    ],
)
def test_bad_filters_are_a_clear_400_on_every_search_endpoint(
    client: Client, scene_photo: bytes, fields: dict[str, str], phrase: str
) -> None:
    single = client.post("/api/search/", {"image": _named(scene_photo, "q.jpg"), **fields})
    batch = client.post("/api/search/batch/", {"images": [_named(scene_photo, "q.jpg")], **fields})
    similar = client.get("/api/images/1/similar/", fields)
    for response in (single, batch, similar):
        assert response.status_code == 400, response.content
        assert phrase in response.json()["error"].lower()


def test_batch_and_similar_refuse_what_they_cannot_search(client: Client, scene_photo: bytes) -> None:
    assert "images" in client.post("/api/search/batch/", {}).json()["error"]
    too_many = [_named(scene_photo, f"{i}.jpg") for i in range(9)]
    response = client.post("/api/search/batch/", {"images": too_many})
    assert response.status_code == 400 and "at most 8" in response.json()["error"]
    assert client.get("/api/search/batch/").status_code == 405
    missing = client.get("/api/images/999999/similar/")
    assert missing.status_code == 404 and "no image" in missing.json()["error"]
    assert client.get("/api/images/1/similar/", {"k": "0"}).status_code == 400
    page = client.get("/", {"similar": "abc"})
    assert page.status_code == 400 and b"similar must be an image id" in page.content
