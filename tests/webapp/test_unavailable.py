"""Every 503 carries ``Retry-After`` (webapp/unavailable.py): a search, a "more like this" and a curation
action while Milvus is unreachable said 503 without it, which bench/soak.py counts as a failure (during a
Milvus restart a client must be told when to come back, not left to retry in a loop)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from django.contrib.auth.models import Permission, User
from django.http import HttpRequest, HttpResponse
from django.test import Client, RequestFactory

from webapp import localstack
from webapp.catalog.models import Image
from webapp.catalog.services import register_image
from webapp.embeddings import services
from webapp.embeddings.models import EmbeddingModelVersion
from webapp.unavailable import UNAVAILABLE_RETRY_AFTER_S, RetryAfterMiddleware

pytestmark = pytest.mark.django_db


@pytest.fixture
def milvus_away(settings) -> Iterator[None]:
    """MILVUS_URI on a port where nothing listens (a server that is restarting), no cached client."""
    services.clear_caches()
    settings.MILVUS_URI = f"http://127.0.0.1:{localstack.free_port()}"
    yield None
    services.clear_caches()


def test_a_search_while_milvus_is_away_says_when_to_retry(
    client: Client, scene_photo: bytes, milvus_away: None
) -> None:
    response = client.post("/api/search/", {"image": _file(scene_photo)})
    assert response.status_code == 503
    assert response["Retry-After"] == str(UNAVAILABLE_RETRY_AFTER_S)


def test_a_curation_action_while_milvus_is_away_changes_nothing_and_says_when_to_retry(
    scene_photo: bytes, milvus_away: None
) -> None:
    curator = User.objects.create_user("curator", password="pw", is_staff=True)
    curator.user_permissions.add(Permission.objects.get(codename="change_image"))
    client = Client()
    client.force_login(curator)
    EmbeddingModelVersion.objects.create(
        name="away", backbone="b", weights="w", image_size=64, dim=8, collection_name="away", is_active=True
    )
    image = register_image(scene_photo, original_name="a.jpg", schedule=False).image
    Image.objects.filter(pk=image.pk).update(status=Image.Status.INDEXED)
    response = client.post("/dataset/curate/", {"action": "remove_from_index", "image": image.pk})
    assert response.status_code == 503
    assert response["Retry-After"] == str(UNAVAILABLE_RETRY_AFTER_S)
    assert Image.objects.get(pk=image.pk).status == Image.Status.INDEXED


def test_a_view_s_own_retry_after_is_kept_and_other_answers_are_untouched() -> None:
    def answer(status: int, retry_after: str | None) -> HttpResponse:
        response = HttpResponse(status=status)
        if retry_after is not None:
            response["Retry-After"] = retry_after
        return response

    request = RequestFactory().get("/")
    for status, own, expected in [(503, "1", "1"), (503, None, str(UNAVAILABLE_RETRY_AFTER_S)),
                                  (200, None, None), (500, None, None)]:  # fmt: skip

        def view(_: HttpRequest, status: int = status, own: str | None = own) -> HttpResponse:
            return answer(status, own)

        response = RetryAfterMiddleware(view)(request)
        assert response.get("Retry-After") == expected, (status, own)


def _file(content: bytes) -> object:
    import io

    upload = io.BytesIO(content)
    upload.name = "photo.jpg"
    return upload
