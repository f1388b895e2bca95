"""GET /api/images/ and /api/landmarks/: filters, page numbers with count/next/previous, and who may read
and write them (the collection page is public, so are its lists; adding photos takes a token)."""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from django.contrib.auth.models import Permission, User
from django.test import Client
from PIL import Image as PILImage

from tests.contract import Contract
from webapp.accounts.services import issue_token
from webapp.catalog.models import Image, ImageExif, Landmark
from webapp.catalog.services import register_image

pytestmark = pytest.mark.django_db


def _photo(seed: int) -> bytes:
    pixels = np.random.default_rng(seed).integers(0, 255, (48, 64, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    PILImage.fromarray(pixels).save(buffer, format="JPEG")
    return buffer.getvalue()


@pytest.fixture
def collection() -> dict[str, object]:
    """Five photos: three of Alpha (one indexed, taken 2019-05-01), two of Beta; one added long ago."""
    alpha, beta = Landmark.objects.create(name="Alpha"), Landmark.objects.create(name="Beta")
    images = [
        register_image(_photo(i), original_name=f"{i}.jpg", landmark=lm, schedule=False).image
        for i, lm in enumerate([alpha, alpha, alpha, beta, beta])
    ]
    Image.objects.filter(pk=images[0].pk).update(status=Image.Status.INDEXED)
    taken = {"taken_at": datetime(2019, 5, 1, 12, tzinfo=UTC), "latitude": 1.5, "longitude": 2.5}
    ImageExif.objects.update_or_create(image=images[0], defaults=taken)
    Image.objects.filter(pk=images[4].pk).update(created_at=datetime(2020, 1, 1, tzinfo=UTC))
    return {"alpha": alpha, "beta": beta, "images": images}


def test_images_are_listed_newest_first_with_their_fields(client: Client, collection: dict) -> None:
    contract = Contract(client)
    page = contract.check("/api/images/", "get", client.get("/api/images/"))
    assert page["count"] == 5 and page["next"] is None and page["previous"] is None
    ids = [item["id"] for item in page["items"]]
    first, *_, oldest = collection["images"]
    assert ids[-1] == oldest.pk  # added in 2020
    indexed = next(item for item in page["items"] if item["id"] == first.pk)
    assert indexed["landmark"] == {"id": collection["alpha"].pk, "name": "Alpha"}
    assert indexed["status"] == "indexed" and indexed["taken_at"].startswith("2019-05-01")
    assert indexed["position"] == {"latitude": 1.5, "longitude": 2.5}
    assert indexed["page_url"] == f"/images/{first.pk}/" and indexed["thumbnail_url"]


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ({"landmark": "alpha"}, 3),
        ({"landmark": "beta", "status": "pending"}, 2),
        ({"status": "indexed"}, 1),
        ({"status": "failed"}, 0),
        ({"taken_after": "2019-05-01", "taken_before": "2019-05-01"}, 1),
        ({"taken_after": "2019-05-02"}, 0),
        ({"added_before": "2020-01-01"}, 1),
        ({"added_after": "2020-01-02"}, 4),
    ],
)
def test_images_filter_by_landmark_status_and_dates(
    client: Client, collection: dict, query: dict[str, str], expected: int
) -> None:
    if "landmark" in query:
        query = {**query, "landmark": str(collection[query["landmark"]].pk)}
    response = client.get("/api/images/", query)
    assert response.status_code == 200, response.content
    assert response.json()["count"] == expected == len(response.json()["items"])


@pytest.mark.parametrize(
    ("query", "phrase"),
    [
        ({"status": "lost"}, "status must be one of"),
        ({"landmark": "alpha"}, "landmark must be an integer"),
        ({"taken_after": "yesterday"}, "taken_after must be a date"),
        ({"page": "0"}, "page must be at least 1"),
        ({"page_size": "1000"}, "page_size must be at most 200"),
    ],
)
def test_bad_list_parameters_are_a_clear_400(client: Client, query: dict[str, str], phrase: str) -> None:
    contract = Contract(client)
    response = client.get("/api/images/", query)
    assert response.status_code == 400
    assert phrase in contract.check("/api/images/", "get", response)["error"]


def test_pages_link_to_each_other_and_keep_the_filters(client: Client, collection: dict) -> None:
    alpha = collection["alpha"].pk
    first = client.get("/api/images/", {"landmark": alpha, "page_size": 2}).json()
    assert first["count"] == 3 and len(first["items"]) == 2 and first["previous"] is None
    assert first["next"].startswith("http://testserver/api/images/?")
    second = client.get(first["next"]).json()
    assert len(second["items"]) == 1 and second["next"] is None
    assert all(item["landmark"]["id"] == alpha for item in first["items"] + second["items"])
    assert {item["id"] for item in first["items"]}.isdisjoint(item["id"] for item in second["items"])
    back = client.get(second["previous"]).json()
    assert back["items"] == first["items"]
    beyond = client.get("/api/images/", {"page": 9, "page_size": 2}).json()
    assert beyond["items"] == [] and beyond["count"] == 5 and "page=3&" in beyond["previous"]


def test_landmarks_are_listed_by_name_with_their_image_counts(client: Client, collection: dict) -> None:
    contract = Contract(client)
    Landmark.objects.create(name="Aardvark Gate")
    page = contract.check("/api/landmarks/", "get", client.get("/api/landmarks/", {"page_size": 2}))
    assert page["count"] == 3 and page["next"] and page["previous"] is None
    assert [(lm["name"], lm["image_count"]) for lm in page["items"]] == [("Aardvark Gate", 0), ("Alpha", 3)]
    rest = client.get(page["next"]).json()
    assert [(lm["name"], lm["image_count"]) for lm in rest["items"]] == [("Beta", 2)]


def test_anyone_reads_the_lists_but_writing_needs_a_token_with_the_permission(
    client: Client, collection: dict, scene_photo: bytes
) -> None:
    assert client.get("/api/images/").status_code == 200
    assert client.get("/api/landmarks/").status_code == 200
    staff = User.objects.create_user("staff", password="pw", is_staff=True)
    staff.user_permissions.add(Permission.objects.get(codename="add_image"))
    client.force_login(staff)  # a session is not enough to write: the API takes tokens only

    def upload(landmark: str = "", **headers: str) -> int:
        photo = io.BytesIO(scene_photo)
        photo.name = "new.jpg"
        return client.post("/api/images/", {"images": [photo], "landmark": landmark}, **headers).status_code

    assert upload() == 401
    nobody = issue_token(User.objects.create_user("nobody"), "read only").token
    assert upload(HTTP_AUTHORIZATION=f"Token {nobody}") == 403
    assert Image.objects.count() == 5
    for method in (client.put, client.patch, client.delete):
        assert method("/api/images/").status_code == 405
        assert method("/api/landmarks/").status_code == 405
    assert client.post("/api/landmarks/").status_code == 405
    allowed = issue_token(staff, "uploads").token
    for name in ("x" * 256, "tab\there"):  # a name the catalogue could not store is refused first
        assert upload(name, HTTP_AUTHORIZATION=f"Token {allowed}") == 400
    assert upload(HTTP_AUTHORIZATION=f"Bearer {allowed}") == 201
    assert client.get("/api/images/").json()["count"] == 6


def test_the_lists_stay_in_step_with_time(client: Client, collection: dict) -> None:
    """A date filter takes whole days in UTC: an image added a second before midnight is on that day."""
    late = datetime(2021, 3, 3, 23, 59, 59, tzinfo=UTC)
    Image.objects.filter(pk=collection["images"][1].pk).update(created_at=late)
    day = {"added_after": "2021-03-03", "added_before": "2021-03-03"}
    assert client.get("/api/images/", day).json()["count"] == 1
    next_day = (late + timedelta(seconds=1)).date().isoformat()
    after = client.get("/api/images/", {"added_after": next_day, "added_before": next_day})
    assert after.json()["count"] == 0
