"""Phone photos through the whole product: HEIC uploaded with an API token is indexed by the real worker
with its EXIF (time, GPS, orientation), and HEIC or AVIF query photos find it."""

from __future__ import annotations

import io
import time

import numpy as np
import pytest
from django.contrib.auth.models import Permission, User
from django.test import Client

from retrieval_core.datasets.synthetic import make_scene, render_view
from tests.phone_photos import LATITUDE, LONGITUDE, TAKEN_AT, encode_phone_photo
from webapp.accounts.services import issue_token
from webapp.catalog.models import Image

pytestmark = [pytest.mark.services, pytest.mark.django_db(transaction=True)]

SIZE = (240, 320)


def _named(content: bytes, name: str) -> io.BytesIO:
    handle = io.BytesIO(content)
    handle.name = name
    return handle


def _views(scene_seed: int, count: int) -> list[np.ndarray]:
    scene = make_scene(scene_seed, SIZE)
    rng = np.random.default_rng(scene_seed)
    return [render_view(scene, rng, out_size=SIZE)[0] for _ in range(count)]


def test_heic_uploads_are_indexed_with_their_exif_and_found_by_heic_and_avif_queries(
    client: Client, celery_worker_process: object, empty_vector_store: None
) -> None:
    user = User.objects.create_user("phone", password="a-long-password")
    user.user_permissions.add(*Permission.objects.filter(codename__in=["add_image", "add_landmark"]))
    token = issue_token(user, "phone").token
    queries = {}
    for landmark, seed in (("Tower", 101), ("Bridge", 202)):
        *indexed, query = _views(seed, 4)
        queries[landmark] = query
        # Stored sideways with orientation 6, as a phone held upright writes them: upright once decoded.
        photos = [
            _named(encode_phone_photo(np.rot90(view).copy(), "HEIF", orientation=6), f"IMG_{seed}_{i}.HEIC")
            for i, view in enumerate(indexed)
        ]
        response = client.post(
            "/api/images/",
            {"images": photos, "landmark": landmark},
            HTTP_AUTHORIZATION=f"Token {token}",
        )
        assert response.status_code == 201, response.content
        assert response.json()["errors"] == []

    deadline = time.monotonic() + 180
    while Image.objects.filter(status=Image.Status.PENDING).exists() and time.monotonic() < deadline:
        time.sleep(0.5)
    images = list(Image.objects.select_related("exif"))
    assert len(images) == 6 and {image.status for image in images} == {Image.Status.INDEXED}
    for image in images:
        assert image.format == "HEIF" and image.file.name.endswith(".heic")
        assert (image.width, image.height) == (SIZE[1], SIZE[0])  # upright, not as stored
        assert image.exif.taken_at == TAKEN_AT and image.exif.orientation == 6
        assert abs(image.exif.latitude - LATITUDE) < 1e-6 and abs(image.exif.longitude - LONGITUDE) < 1e-6

    for image_format, suffix in (("HEIF", "heic"), ("AVIF", "avif")):
        for landmark, query in queries.items():
            photo = _named(encode_phone_photo(query, image_format), f"query.{suffix}")
            response = client.post("/api/search/", {"image": photo})
            assert response.status_code == 200, response.content
            results = response.json()["results"]
            assert results[0]["landmark"]["name"] == landmark, (image_format, results[:3])

    # The page that shows a photo shows one a browser can display.
    page = client.get(images[0].get_absolute_url()).content.decode()
    assert images[0].thumbnail.url in page


def test_a_heic_uploaded_in_the_collection_page_is_indexed(
    uploader_client: Client, celery_worker_process: object, empty_vector_store: None
) -> None:
    (view,) = _views(303, 1)
    photo = _named(encode_phone_photo(view, "HEIF"), "IMG_0303.HEIC")
    response = uploader_client.post("/collection/", {"photos": [photo], "landmark": "Phone place"})
    assert response.status_code == 302
    image = Image.objects.get()
    deadline = time.monotonic() + 120
    pending = Image.objects.filter(pk=image.pk, status=Image.Status.PENDING)
    while pending.exists() and time.monotonic() < deadline:
        time.sleep(0.5)
    image.refresh_from_db()
    assert image.status == Image.Status.INDEXED and image.format == "HEIF"
    assert image.landmark is not None and image.landmark.name == "Phone place"
