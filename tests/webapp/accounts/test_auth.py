"""Writes need a logged-in user with the matching permission, or their API token; search stays public."""

from __future__ import annotations

import io

import pytest
from django.contrib.auth.models import Permission, User
from django.core.management import call_command
from django.test import Client

from webapp.accounts.models import ApiToken
from webapp.accounts.services import issue_token, revoke_token
from webapp.catalog.models import Image, Landmark

pytestmark = pytest.mark.django_db


def _named(content: bytes, name: str) -> io.BytesIO:
    handle = io.BytesIO(content)
    handle.name = name
    return handle


def _user(name: str, *codenames: str) -> User:
    user = User.objects.create_user(name, password="a-long-password")
    user.user_permissions.add(*Permission.objects.filter(codename__in=codenames))
    return user


def test_an_anonymous_visitor_cannot_upload_or_create_landmarks(client: Client, scene_photo: bytes) -> None:
    response = client.post("/collection/", {"photos": [_named(scene_photo, "a.jpg")], "landmark": "Nowhere"})
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/?next=/collection/")
    assert not Image.objects.exists() and not Landmark.objects.exists()
    page = client.get("/collection/").content.decode()
    assert "Log in</a> to add photos" in page and 'name="photos"' not in page


def test_a_user_without_the_permission_gets_403(client: Client, scene_photo: bytes) -> None:
    client.force_login(_user("viewer"))
    response = client.post("/collection/", {"photos": [_named(scene_photo, "a.jpg")]})
    assert response.status_code == 403
    assert b"catalog.add_image" in response.content
    assert not Image.objects.exists()


def test_adding_photos_to_a_new_landmark_needs_add_landmark(client: Client, scene_photo: bytes) -> None:
    client.force_login(_user("adder", "add_image"))
    response = client.post(
        "/collection/", {"photos": [_named(scene_photo, "a.jpg")], "landmark": "New place"}, follow=True
    )
    assert "may not create the landmark" in response.content.decode()
    assert not Image.objects.exists() and not Landmark.objects.exists()
    Landmark.objects.create(name="Old place")  # an existing landmark needs no more than add_image
    client.post("/collection/", {"photos": [_named(scene_photo, "a.jpg")], "landmark": "Old place"})
    assert Image.objects.get().landmark.name == "Old place"


def test_the_site_has_its_own_login_page(client: Client) -> None:
    _user("alice", "add_image")
    page = client.get("/accounts/login/?next=/collection/")
    assert page.status_code == 200 and b'name="password"' in page.content
    wrong = client.post("/accounts/login/", {"username": "alice", "password": "nope", "next": "/collection/"})
    assert wrong.status_code == 200 and not wrong.wsgi_request.user.is_authenticated
    right = client.post(
        "/accounts/login/", {"username": "alice", "password": "a-long-password", "next": "/collection/"}
    )
    assert right.status_code == 302 and right["Location"] == "/collection/"
    page = client.get("/collection/").content.decode()
    assert 'name="photos"' in page and "Log out" in page
    assert client.post("/accounts/logout/").status_code == 302
    assert "Log in" in client.get("/collection/").content.decode()


def test_the_upload_api_takes_a_token_and_refuses_everything_else(client: Client, scene_photo: bytes) -> None:
    alice = _user("alice", "add_image", "add_landmark")
    issued = issue_token(alice, "script")

    def post(token: str | None, **fields: object):
        headers = {"HTTP_AUTHORIZATION": f"Token {token}"} if token is not None else {}
        return client.post("/api/images/", {"images": [_named(scene_photo, "a.jpg")], **fields}, **headers)

    assert post(None).status_code == 401
    assert post("not-a-token").status_code == 401
    client.force_login(alice)  # a session cookie is not enough: the API looks at tokens only (no CSRF)
    assert post(None).status_code == 401
    client.logout()
    bob = issue_token(_user("bob"), "no rights")
    assert post(bob.token).status_code == 403
    assert not Image.objects.exists()

    response = post(issued.token, landmark="Via API")
    assert response.status_code == 201
    body = response.json()
    image = Image.objects.get()
    assert body["images"] == [{"id": image.pk, "status": "pending", "page_url": f"/images/{image.pk}/"}]
    assert image.landmark.name == "Via API"
    assert ApiToken.objects.get(pk=issued.record.pk).last_used_at is not None

    bad = client.post(
        "/api/images/", {"images": [_named(b"nope", "bad.jpg")]}, HTTP_AUTHORIZATION=f"Bearer {issued.token}"
    )
    assert bad.status_code == 400 and bad.json()["errors"][0]["name"] == "bad.jpg"

    revoke_token(issued.record)
    assert post(issued.token).status_code == 401


def test_tokens_are_stored_hashed_and_issued_on_a_page_or_by_a_command(client: Client, capsys) -> None:
    alice = _user("alice", "add_image")
    assert client.get("/accounts/tokens/").status_code == 302  # log in first
    client.force_login(alice)
    page = client.post("/accounts/tokens/", {"name": "laptop"}).content.decode()
    record = ApiToken.objects.get(name="laptop")
    token = page.split('id="new-token">')[1].split("<")[0]
    assert token.startswith(record.prefix) and token not in record.key_hash
    assert "laptop" in client.get("/accounts/tokens/").content.decode()
    assert token not in client.get("/accounts/tokens/").content.decode()  # shown once
    client.post(f"/accounts/tokens/{record.pk}/revoke/")
    assert not ApiToken.objects.get(pk=record.pk).is_active

    call_command("issue_api_token", "alice", "--name", "cron")
    printed = capsys.readouterr().out.strip()
    assert ApiToken.objects.get(name="cron").prefix == printed[:8]


def test_search_stays_public(client: Client) -> None:
    assert client.get("/").status_code == 200
    assert client.post("/api/search/", {}).status_code == 400  # reached the view: no login asked
