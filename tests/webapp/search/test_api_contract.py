"""The generated OpenAPI document covers every JSON endpoint, and the endpoints that need no search index
answer as it says (the search endpoints are checked on the real stack in tests/e2e/test_search_features.py,
every operation with generated requests in tests/webapp/test_api_schemathesis.py)."""

from __future__ import annotations

import io

import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver
from jsonschema import Draft202012Validator

from tests.contract import Contract
from webapp.accounts.services import issue_token
from webapp.evaluation.models import EvaluationRun
from webapp.training.models import TrainingRun

pytestmark = pytest.mark.django_db


def _routes(patterns: list[URLPattern | URLResolver], prefix: str = "") -> list[str]:
    out = []
    for pattern in patterns:
        if isinstance(pattern, URLResolver):
            out += _routes(pattern.url_patterns, prefix + str(pattern.pattern))
        else:
            out.append(prefix + str(pattern.pattern))
    return out


def _as_openapi(route: str) -> str:
    parts = [
        "{" + part.split(":")[-1][:-1] + "}" if part.startswith("<") else part for part in route.split("/")
    ]
    return "/" + "/".join(parts)


# The document, its Swagger UI page, and the API root (a 404 naming the docs) are no operations.
NOT_OPERATIONS = {"/api/schema/", "/api/docs/", "/api/"}


def test_every_json_api_route_is_in_the_document_and_the_document_is_valid(client: Client) -> None:
    contract = Contract(client)
    Draft202012Validator.check_schema({"components": contract.document["components"]})
    routes = {
        _as_openapi(route) for route in _routes(get_resolver().url_patterns) if route.startswith("api/")
    } - NOT_OPERATIONS
    assert routes == set(contract.document["paths"])


def test_upload_progress_and_run_endpoints_answer_as_documented(client: Client, scene_photo: bytes) -> None:
    contract = Contract(client)
    user = get_user_model().objects.create_superuser("staff", "s@example.com", "pw")
    token = issue_token(user, "contract").token
    photo = io.BytesIO(scene_photo)
    photo.name = "scene.jpg"
    created = client.post("/api/images/", {"images": [photo]}, HTTP_AUTHORIZATION=f"Token {token}")
    assert created.status_code == 201
    image_id = contract.check("/api/images/", "post", created)["images"][0]["id"]
    garbage = io.BytesIO(b"not a photo")
    garbage.name = "x.jpg"
    refused = client.post("/api/images/", {"images": [garbage]}, HTTP_AUTHORIZATION=f"Token {token}")
    contract.check("/api/images/", "post", refused)
    contract.check("/api/images/", "post", client.post("/api/images/", {"images": [garbage]}))
    progress = client.get(f"/api/collection/progress/?ids={image_id}")
    assert contract.check("/api/collection/progress/", "get", progress)["total"] == 1

    client.force_login(user)
    evaluation = EvaluationRun.objects.create(root="/data/x")
    response = client.get(f"/api/evaluations/{evaluation.pk}/progress/")
    contract.check("/api/evaluations/{run_id}/progress/", "get", response)
    training = TrainingRun.objects.create(root="/data/x")
    contract.check("/api/training/{run_id}/", "get", client.get(f"/api/training/{training.pk}/"))
