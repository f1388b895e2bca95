"""Every 503 says when to retry: a ``Retry-After`` on each "service unavailable" answer that lacks one.

A 503 means a service behind the web server is away for a moment (Milvus restarting, the photo store or
the broker unreachable) or the server is saturated. The throttle's refusals set their own ``Retry-After``;
the answers of views that catch a store error (search, "more like this", curation, media) did not, so a
client could not tell a passing outage from a broken server, and well-behaved clients (and proxies) that
wait only when told to retried at once, in a tight loop, while Milvus restarted (bench/soak.py found it).
This middleware adds ``Retry-After: UNAVAILABLE_RETRY_AFTER_S`` where the view said nothing, whichever
view answered; a view's own value is kept.
"""

from __future__ import annotations

from collections.abc import Callable

from django.http import HttpRequest, HttpResponse

UNAVAILABLE_RETRY_AFTER_S = 5
"""About the time a Milvus Lite server or a worker takes to restart on the one-machine stack."""


class RetryAfterMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        if response.status_code == 503 and not response.has_header("Retry-After"):
            response["Retry-After"] = str(UNAVAILABLE_RETRY_AFTER_S)
        return response
