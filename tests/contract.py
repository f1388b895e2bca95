"""Checks real responses against the OpenAPI document the server serves at /api/schema/."""

from __future__ import annotations

from typing import Any

from django.test import Client
from jsonschema import Draft202012Validator


class Contract:
    """Validates responses against the OpenAPI document the server itself serves."""

    def __init__(self, client: Client) -> None:
        response = client.get("/api/schema/")
        assert response.status_code == 200 and response["Content-Type"].startswith("application/json")
        self.document: dict[str, Any] = response.json()
        assert self.document["openapi"].startswith("3.1")
        self.checked: set[tuple[str, str, int]] = set()

    def check(self, template: str, method: str, response: Any) -> dict[str, Any]:
        operation = self.document["paths"][template][method]
        declared = operation["responses"]
        status = str(response.status_code)
        assert status in declared, f"{method.upper()} {template} answered undeclared {status}"
        schema = declared[status]["content"]["application/json"]["schema"]
        payload = response.json()
        validator = Draft202012Validator({**schema, "components": self.document["components"]})
        errors = sorted(validator.iter_errors(payload), key=str)
        assert not errors, f"{method.upper()} {template} {status}: {errors[0]}"
        self.checked.add((template, method, response.status_code))
        return payload
