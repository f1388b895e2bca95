"""Public search under load: a per-client rate limit and admission control, answered before any work.

- Rate limit: at most ``SEARCH_RATE_LIMIT`` searches per client and ``SEARCH_RATE_WINDOW_SECONDS`` (a fixed
  window counted in Redis, so every web process and machine shares it); over it: 429 with ``Retry-After``
  (the seconds left in the window). With Redis unreachable the limit is not enforced (logged): search must
  not fail because the broker is down.
- Admission control: at most ``SEARCH_MAX_IN_FLIGHT`` searches run at once in a process (a search is CPU
  bound: more at once only makes every one slower); one more waits up to ``SEARCH_ADMISSION_WAIT_MS`` for a
  slot, then gets 503 with ``Retry-After: 1`` at once instead of queueing behind the others, so accepted
  searches keep their latency and refused ones learn it in milliseconds.

Only POSTs to the search page and the search API are guarded; everything else passes untouched.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.urls import Resolver404, resolve
from redis import Redis
from redis.exceptions import RedisError

logger = logging.getLogger(__name__)

GUARDED_VIEWS = frozenset({"search:api-search", "search:search"})


@dataclass(frozen=True)
class Refusal:
    status: int  # 429 (this client asks too often) or 503 (the server is saturated)
    retry_after: int  # seconds
    message: str


@lru_cache(maxsize=4)
def _redis(url: str) -> Redis:
    return Redis.from_url(url, socket_timeout=0.2, socket_connect_timeout=0.2)


def client_key(request: HttpRequest) -> str:
    """Who is asking: the configured META key (REMOTE_ADDR, or a header set by a trusted proxy)."""
    raw = str(request.META.get(settings.CLIENT_IP_HEADER) or request.META.get("REMOTE_ADDR") or "unknown")
    return raw.split(",")[0].strip()[:64]


def check_rate(client: str, *, now: float | None = None) -> Refusal | None:
    """Count one search of ``client`` in the current window; a refusal once it is over the limit."""
    limit, window = settings.SEARCH_RATE_LIMIT, max(1, settings.SEARCH_RATE_WINDOW_SECONDS)
    if limit <= 0:
        return None
    now = time.time() if now is None else now
    slot = int(now // window)
    key = f"ratelimit:search:{client}:{slot}"
    try:
        pipe = _redis(settings.REDIS_URL).pipeline()
        pipe.incr(key)
        pipe.expire(key, window + 1)
        count = int(pipe.execute()[0])
    except RedisError as error:
        logger.warning("search rate limit not enforced, Redis unreachable: %s", error)
        return None
    if count <= limit:
        return None
    retry_after = max(1, int((slot + 1) * window - now + 0.999))
    return Refusal(429, retry_after, f"Too many searches: at most {limit} per {window} s; retry later.")


class AdmissionGate:
    """A bounded number of searches at once; ``try_enter`` waits at most ``wait_s`` for a slot."""

    def __init__(self, slots: int) -> None:
        self.slots = slots
        self._semaphore = threading.BoundedSemaphore(max(1, slots))

    def try_enter(self, wait_s: float) -> bool:
        if self.slots <= 0:  # 0 = admission control off
            return True
        return self._semaphore.acquire(timeout=wait_s) if wait_s > 0 else self._semaphore.acquire(False)

    def leave(self) -> None:
        if self.slots > 0:
            self._semaphore.release()


def _drain(request: HttpRequest, chunk: int = 256 * 1024) -> None:
    """Read and drop the unread upload, so the client sees the refusal instead of a reset connection
    (it is still sending its photo). Bounded by the upload limit; far cheaper than decoding it."""
    try:
        remaining = min(int(request.META.get("CONTENT_LENGTH") or 0), settings.DATA_UPLOAD_MAX_MEMORY_SIZE)
    except ValueError:
        return
    while remaining > 0:
        data = request.read(min(chunk, remaining))
        if not data:
            return
        remaining -= len(data)


def _refused(request: HttpRequest, refusal: Refusal) -> HttpResponse:
    _drain(request)
    response = JsonResponse({"error": refusal.message}, status=refusal.status)
    response["Retry-After"] = str(refusal.retry_after)
    return response


class SearchThrottleMiddleware:
    """Applies the rate limit, then admission control, to search POSTs (see the module docstring)."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response
        self.gate = AdmissionGate(settings.SEARCH_MAX_IN_FLIGHT)

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if request.method != "POST" or not self._guarded(request.path_info):
            return self.get_response(request)
        refusal = check_rate(client_key(request))
        if refusal is not None:
            return _refused(request, refusal)
        if not self.gate.try_enter(settings.SEARCH_ADMISSION_WAIT_MS / 1000):
            busy = Refusal(503, 1, "The server is busy with other searches; retry in a second.")
            return _refused(request, busy)
        try:
            return self.get_response(request)
        finally:
            self.gate.leave()

    @staticmethod
    def _guarded(path: str) -> bool:
        try:
            return resolve(path).view_name in GUARDED_VIEWS
        except Resolver404:
            return False
