"""The collection page's drop zone sends one photo per request and reads a JSON answer per file; the plain
form (no JavaScript) still redirects with messages."""

from __future__ import annotations

import io

import numpy as np
import pytest
from django.contrib.auth.models import Permission, User
from django.http import HttpResponse
from django.test import Client

from tests.conftest import encode_jpeg
from webapp.catalog.models import Image

pytestmark = pytest.mark.django_db


def _post(client: Client, content: bytes, name: str, landmark: str = "") -> HttpResponse:
    handle = io.BytesIO(content)
    handle.name = name
    response: HttpResponse = client.post(
        "/collection/", {"photos": [handle], "landmark": landmark}, HTTP_ACCEPT="application/json"
    )
    return response


def _json(response: HttpResponse) -> dict[str, list[dict[str, object]]]:
    return response.json()  # type: ignore[attr-defined,no-any-return]


def test_one_photo_per_request_answers_json(uploader_client: Client, scene_photo: bytes) -> None:
    first = _post(uploader_client, scene_photo, "a.jpg")
    assert first.status_code == 201
    [image] = _json(first)["images"]
    assert Image.objects.filter(pk=image["id"]).exists() and image["page_url"]
    other_photo = encode_jpeg(np.random.default_rng(1).integers(0, 255, (200, 260, 3), dtype=np.uint8))
    second = _post(uploader_client, other_photo, "b.jpg")
    assert second.status_code == 201
    # Each request adds to the session's "your last upload", which follows all the files dropped together.
    assert uploader_client.session["uploaded_ids"] == [image["id"], _json(second)["images"][0]["id"]]
    broken = _post(uploader_client, b"not a photo", "c.jpg")
    assert broken.status_code == 400
    [error] = _json(broken)["errors"]
    assert error["name"] == "c.jpg" and error["error"]
    assert Image.objects.count() == 2


def test_a_refused_landmark_is_a_json_error(scene_photo: bytes) -> None:
    user = User.objects.create_user("adder", password="pw")
    user.user_permissions.add(Permission.objects.get(codename="add_image"))
    client = Client()
    client.force_login(user)
    refused = _post(client, scene_photo, "a.jpg", landmark="A new place")
    assert refused.status_code == 403
    assert "may not create the landmark" in str(_json(refused)["errors"][0]["error"])
    assert not Image.objects.exists()


def test_a_user_without_the_permission_is_told_what_to_ask_for() -> None:
    client = Client()
    client.force_login(User.objects.create_user("viewer", password="pw"))
    page = client.get("/collection/").content.decode()
    assert "catalog.add_image" in page and "ask an administrator" in page and 'id="drop-zone"' not in page
    anonymous = Client().get("/collection/").content.decode()
    assert "Log in" in anonymous and "catalog.add_image" in anonymous
