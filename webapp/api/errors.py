"""The API's one exception handler: every refusal, whatever raised it, answers ``{"error": "<message>"}``
with its status, and an error that is no known refusal stays a 500 (a bug to fix, reported as such)."""

from __future__ import annotations

from collections.abc import Mapping
from weakref import WeakKeyDictionary

from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from ninja import Field, Schema
from ninja.errors import HttpError, Throttled, ValidationError

from webapp import throttling
from webapp.search.errors import failure
from webapp.validation import first_problem

__all__ = ["ApiRefusal", "Error", "api_error", "refuse_search"]


class Error(Schema):
    """Every refusal's body."""

    error: str = Field(min_length=1, description="What went wrong and what to do about it.")


class ApiRefusal(Exception):
    """A refusal the API decides itself (no or a bad token, a missing permission), with its headers."""

    def __init__(self, status: int, message: str, headers: Mapping[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.headers = dict(headers or {})


_SEARCH_REFUSALS: WeakKeyDictionary[HttpRequest, throttling.Refusal] = WeakKeyDictionary()


def refuse_search(request: HttpRequest, refusal: throttling.Refusal) -> None:
    """Remember why a throttle refused the request (django-ninja's throttles answer only yes or no)."""
    _SEARCH_REFUSALS[request] = refusal


def _json(status: int, message: str, headers: Mapping[str, str] | None = None) -> JsonResponse:
    response = JsonResponse({"error": message}, status=status)
    for name, value in (headers or {}).items():
        response[name] = value
    return response


def api_error(request: HttpRequest, exc: Exception) -> HttpResponse:
    """Map an exception raised by an operation (its parameters, auth, throttle or body) to its answer."""
    if isinstance(exc, ValidationError):
        return _json(400, first_problem(exc.errors))
    if isinstance(exc, ApiRefusal):
        return _json(exc.status, str(exc), exc.headers)
    if isinstance(exc, Throttled):
        refusal = _SEARCH_REFUSALS.pop(request, None)
        if refusal is None:
            refusal = throttling.Refusal(429, exc.wait or 1, "Too many requests; retry later.", "rate_limit")
        return throttling.refused(request, refusal)  # 429 with Retry-After, counted in the refusals metric
    if isinstance(exc, HttpError):
        return _json(exc.status_code, str(exc))
    if isinstance(exc, Http404):
        return _json(404, str(exc) or "not found")
    known = failure(exc)
    if known is None:
        raise exc
    return _json(known.status, known.message)
