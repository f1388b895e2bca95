"""Every write of the site needs its own permission, not just a staff account.

`WRITES` lists each guarded endpoint with the permission it needs, how to set one up and how to see that the
write happened. For each: a staff user holding every *other* write permission is refused (403 naming the
permission, nothing written), an anonymous visitor is sent to log in (or gets 401 from the token API), and
a staff user with just that permission succeeds. A last test walks the URL resolver, so a new URL that
accepts a POST without a guard (or a guard without an entry here) fails the suite.
"""

from __future__ import annotations

import io
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from django.contrib.auth.models import Permission, User
from django.http import HttpResponse
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver, reverse
from django.urls.converters import IntConverter, UUIDConverter

from webapp.accounts.permissions import OPEN_POSTS
from webapp.accounts.services import issue_token
from webapp.catalog.models import Image, Landmark
from webapp.catalog.services import register_image
from webapp.curation import actions
from webapp.curation.models import CurationAction, ImageCuration
from webapp.embeddings.models import EmbeddingModelVersion
from webapp.embeddings.services import get_active_version
from webapp.evaluation.models import EvaluationRun
from webapp.training.models import TrainingRun

pytestmark = pytest.mark.django_db


@dataclass(frozen=True)
class Setup:
    kwargs: dict[str, object]  # of the URL
    data: dict[str, object]  # the POST's fields


@dataclass(frozen=True)
class Write:
    view: str  # URL name
    permission: str  # app_label.codename
    prepare: Callable[[Path, bytes], Setup]
    happened: Callable[[HttpResponse], bool]  # the write took place (the view ran past its guard)
    token_api: bool = False  # authenticated by an API token, not a session


def _photo(content: bytes) -> io.BytesIO:
    handle = io.BytesIO(content)
    handle.name = "a.jpg"
    return handle


def _image(photo: bytes) -> Image:
    landmark = Landmark.objects.get_or_create(name="Alpha")[0]
    registered = register_image(
        photo, original_name="a.jpg", source="a.jpg", landmark=landmark, schedule=False
    )
    return registered.image


def _messages(response: HttpResponse) -> list[str]:
    return [str(message) for message in response.wsgi_request._messages]  # type: ignore[attr-defined]


def _candidate_version() -> EmbeddingModelVersion:
    return EmbeddingModelVersion.objects.create(
        name="candidate", backbone="resnet18", weights="imagenet", image_size=224, dim=8,
        collection_name="test_candidate", state=EmbeddingModelVersion.State.NEW,
    )  # fmt: skip


def _owner() -> User:
    """The curator who did the action that the undo test undoes."""
    owner, created = User.objects.get_or_create(username="owner", defaults={"is_staff": True})
    if created:
        owner.user_permissions.add(Permission.objects.get(codename="change_image"))
    return owner


def _noise_action(photo: bytes) -> CurationAction:
    action = actions.curate(CurationAction.Kind.MARK_NOISE, [_image(photo).pk], user=_owner())
    assert action is not None
    return action


WRITES = [
    Write(
        "operations:collection", "catalog.add_image",
        lambda tmp, photo: Setup({}, {"photos": [_photo(photo)]}),
        lambda response: Image.objects.exists(),
    ),
    Write(
        "api:images", "catalog.add_image",
        lambda tmp, photo: Setup({}, {"images": [_photo(photo)]}),
        lambda response: response.status_code == 201 and Image.objects.exists(),
        token_api=True,
    ),
    Write(
        "training:list", "training.add_trainingrun",
        lambda tmp, photo: Setup({}, {"recipe": "e3", "epochs": "1"}),
        lambda response: TrainingRun.objects.exists(),
    ),
    Write(
        "training:cancel", "training.change_trainingrun",
        lambda tmp, photo: Setup({"pk": TrainingRun.objects.create(config={}).pk}, {}),
        lambda response: TrainingRun.objects.get().cancel_requested,
    ),
    Write(
        "embeddings:activate", "embeddings.change_embeddingmodelversion",
        lambda tmp, photo: Setup({"pk": _candidate_version().pk}, {}),
        lambda response: EmbeddingModelVersion.objects.get(name="candidate").state == "indexing",
    ),
    Write(  # the active version's collection is never dropped: the view says so, past its guard
        "embeddings:drop", "embeddings.change_embeddingmodelversion",
        lambda tmp, photo: Setup({"pk": get_active_version().pk}, {}),
        lambda response: any("cannot be dropped" in m for m in _messages(response)),
    ),
    Write(
        "evaluation:list", "evaluation.add_evaluationrun",
        lambda tmp, photo: Setup({}, {"root": str(tmp)}),
        lambda response: EvaluationRun.objects.exists(),
    ),
    Write(
        "curation:curate", "catalog.change_image",
        lambda tmp, photo: Setup({}, {"action": "confirm_label", "image": [_image(photo).pk]}),
        lambda response: ImageCuration.objects.filter(label_confirmed=True).exists(),
    ),
    Write(
        "curation:undo", "catalog.change_image",
        lambda tmp, photo: Setup({"pk": _noise_action(photo).pk}, {}),
        lambda response: CurationAction.objects.filter(kind=CurationAction.Kind.UNDO).exists(),
    ),
    Write(  # a task without a failure record: the page says so, past its guard
        "operations:jobs-retry", "operations.add_resend",
        lambda tmp, photo: Setup({"task_id": "no-such-task"}, {}),
        lambda response: any("no-such-task" in m for m in _messages(response)),
    ),
    Write(
        "curation:analyse", "catalog.change_image",
        lambda tmp, photo: Setup({}, {}),
        lambda response: any("the whole collection" in m for m in _messages(response)),
    ),
]  # fmt: skip
WRITE_PERMISSIONS = sorted({write.permission for write in WRITES})


def _staff(name: str, permissions: list[str]) -> User:
    user = User.objects.create_user(name, password="a-long-password", is_staff=True)
    for permission in permissions:
        app_label, codename = permission.split(".")
        granted = Permission.objects.get(content_type__app_label=app_label, codename=codename)
        user.user_permissions.add(granted)
    return user


def _post(write: Write, user: User | None, setup: Setup) -> HttpResponse:
    client, headers = Client(), {}
    if write.token_api and user is not None:
        headers["HTTP_AUTHORIZATION"] = f"Token {issue_token(user, 'test').token}"
    elif user is not None:
        client.force_login(user)
    return client.post(reverse(write.view, kwargs=setup.kwargs), setup.data, **headers)


@pytest.mark.parametrize("write", WRITES, ids=[write.view for write in WRITES])
def test_a_staff_user_without_the_permission_is_refused(
    write: Write, tmp_path: Path, scene_photo: bytes
) -> None:
    others = [permission for permission in WRITE_PERMISSIONS if permission != write.permission]
    setup = write.prepare(tmp_path, scene_photo)
    response = _post(write, _staff("intern", others), setup)
    assert response.status_code == 403
    assert write.permission in response.content.decode()
    assert not write.happened(response)


@pytest.mark.parametrize("write", WRITES, ids=[write.view for write in WRITES])
def test_an_anonymous_visitor_is_sent_to_log_in(write: Write, tmp_path: Path, scene_photo: bytes) -> None:
    response = _post(write, None, write.prepare(tmp_path, scene_photo))
    if write.token_api:
        assert response.status_code == 401 and "API token" in response.json()["error"]
    else:
        assert response.status_code == 302 and "/login/" in response["Location"]
    assert not write.happened(response)


@pytest.mark.parametrize("write", WRITES, ids=[write.view for write in WRITES])
def test_a_staff_user_with_the_permission_succeeds(write: Write, tmp_path: Path, scene_photo: bytes) -> None:
    setup = write.prepare(tmp_path, scene_photo)
    response = _post(write, _staff("allowed", [write.permission]), setup)
    assert response.status_code in (200, 201, 302), response.content[:300]
    assert write.happened(response)


def _urls(resolver: URLResolver, namespace: str = "") -> Iterator[tuple[str, URLPattern]]:
    """(namespaced name, pattern) of every named URL outside the admin (which has its own permissions)."""
    for entry in resolver.url_patterns:
        if isinstance(entry, URLResolver):
            if entry.namespace == "admin":
                continue
            inner = f"{namespace}:{entry.namespace}".strip(":") if entry.namespace else namespace
            yield from _urls(entry, inner)
        elif entry.name:
            yield (f"{namespace}:{entry.name}".strip(":"), entry)


def _sample_kwargs(pattern: URLPattern) -> dict[str, object]:
    converters = getattr(pattern.pattern, "converters", {})
    samples: dict[str, object] = {}
    for name, converter in converters.items():
        if isinstance(converter, IntConverter):
            samples[name] = 1
        elif isinstance(converter, UUIDConverter):
            samples[name] = uuid.uuid4()
        else:
            samples[name] = "x"
    return samples


def test_every_url_that_accepts_a_post_is_guarded_or_declared_open() -> None:
    """A staff user without permissions POSTs to every URL: each refuses the method (405), refuses the
    user (403, or 401 from the token API), or is one of the declared open POSTs; every guarded view is
    covered by `WRITES` with the permission it checks."""
    staff = Client()
    staff.force_login(_staff("nobody", []))
    urls = list(_urls(get_resolver()))
    assert len(urls) > 20, "the walk found too few URLs: is it still walking the resolver?"
    unguarded, untested = [], []
    tested = {write.view: write.permission for write in WRITES}
    for name, pattern in urls:
        if name in OPEN_POSTS:
            continue
        status = staff.post(reverse(name, kwargs=_sample_kwargs(pattern))).status_code
        permission = getattr(pattern.callback, "write_permission", None)
        if status != 405 and (permission is None or status not in (401, 403)):
            unguarded.append(f"{name} (answered {status}, guard: {permission})")
        if permission is not None and tested.get(name) != permission:
            untested.append(f"{name} ({permission})")
    assert not unguarded, (
        "POST reaches these views without a permission check: add webapp.accounts.permissions."
        f"write_permission (or require_GET, or an OPEN_POSTS entry): {unguarded}"
    )
    assert not untested, f"guarded views missing from WRITES in this test: {untested}"
    assert set(tested) <= {name for name, _ in urls}, "an entry of WRITES names a URL that is gone"
