"""A property-based contract run of the whole JSON API with schemathesis, against the real app: a live
server on the test database with the Milvus Lite server and Redis of the suite, a small indexed collection,
driven over HTTP from the document the server itself serves at /api/schema/.

For every operation, requests generated from its declared parameters and bodies are sent anonymously, with
a token whose user may not write, with a token that may upload, and with a staff member's session. Each
answer must be no 5xx, a status the document declares, and a body its schema accepts; without the
permission, no write may succeed. The run is bounded: a fixed number of examples per operation, about a
minute in all on one core.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
import schemathesis
from django.conf import settings as django_settings
from django.contrib.auth.models import Permission, User
from django.test import Client
from django.urls import resolve
from hypothesis import HealthCheck, given, settings
from PIL import Image as PILImage
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from webapp.accounts.permissions import OPEN_POSTS
from webapp.accounts.services import issue_token
from webapp.catalog.models import Image, Landmark
from webapp.catalog.services import register_image
from webapp.embeddings.services import index_images
from webapp.evaluation.models import EvaluationRun
from webapp.reranking.local_features import extract_local_features
from webapp.training.models import TrainingRun

pytestmark = [pytest.mark.services, pytest.mark.django_db(transaction=True)]

EXAMPLES_PER_OPERATION = 40  # about 350 requests per identity
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
WRITES = frozenset({"POST", "PUT", "PATCH", "DELETE"})


def _photo(seed: int) -> bytes:
    pixels = np.random.default_rng(seed).integers(0, 255, (32, 48, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    PILImage.fromarray(pixels).save(buffer, format="JPEG")
    return buffer.getvalue()


@pytest.fixture
def seeded(empty_vector_store: None, isolated_broker: object, scene_photo: bytes) -> None:
    """Something for every operation to find: two landmarks, three photos embedded into the active model's
    collection with their local features (so searches and "more like this" run for real), one photo still
    waiting (its "more like this" is a 409), and runs for the staff endpoints. What the uploads queue goes
    to a broker database no worker reads."""
    alpha, beta = Landmark.objects.create(name="Alpha"), Landmark.objects.create(name="Beta")
    photos = [scene_photo, _photo(1), _photo(2), _photo(3)]
    images = [
        register_image(photo, original_name=f"{i}.jpg", landmark=[alpha, beta][i // 2], schedule=False).image
        for i, photo in enumerate(photos)
    ]
    indexed = [image.pk for image in images[:3]]
    assert index_images(indexed) == {"indexed": 3, "failed": 0}
    extract_local_features(indexed)
    EvaluationRun.objects.create(root="/data/x")
    TrainingRun.objects.create(root="/data/x")


def _user(name: str, *permissions: str) -> User:
    user = User.objects.create_user(name)
    user.user_permissions.add(*Permission.objects.filter(codename__in=permissions))
    return user


def _open(path: str) -> bool:
    """A POST anyone may send because it writes nothing shared (a search: OPEN_POSTS says why)."""
    return resolve(path).view_name in OPEN_POSTS


WHO: dict[str, Callable[[], dict[str, str]]] = {
    "anonymous": lambda: {},
    "token without permission": lambda: {
        "Authorization": f"Token {issue_token(_user('reader'), 'contract').token}"
    },
    "token that may upload": lambda: {
        "Authorization": f"Bearer {issue_token(_user('uploader', 'add_image'), 'contract').token}"
    },
    "staff session": lambda: {"Cookie": f"{django_settings.SESSION_COOKIE_NAME}={_staff_session()}"},
}


def _staff_session() -> str:
    """A logged-in staff member without permissions: reads the run endpoints, writes nothing."""
    client = Client()
    client.force_login(User.objects.create_user("staff", is_staff=True))
    return client.cookies[django_settings.SESSION_COOKIE_NAME].value


@pytest.mark.parametrize("who", list(WHO))
def test_every_operation_answers_as_documented(live_server: Any, seeded: None, who: str) -> None:
    headers = WHO[who]()
    may_write = who == "token that may upload"
    schema = schemathesis.openapi.from_url(f"{live_server.url}/api/schema/")
    images_before = Image.objects.count()
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 8
    for operation in operations:

        @settings(
            max_examples=EXAMPLES_PER_OPERATION,
            deadline=None,
            database=None,
            derandomize=True,
            suppress_health_check=list(HealthCheck),
        )
        @given(case=operation.as_strategy())
        def answers_as_documented(case: schemathesis.Case) -> None:
            case.headers = {**(case.headers or {}), **headers}  # the run's identity wins over generated ones
            response = case.call(base_url=live_server.url)
            case.validate_response(response, checks=CHECKS)
            if case.method.upper() in WRITES and not may_write and not _open(case.formatted_path):
                assert response.status_code >= 400, f"{case.method} {case.path} wrote without permission"

        answers_as_documented()
    if not may_write:
        assert Image.objects.count() == images_before
