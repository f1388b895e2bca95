"""Public search under load: a per-client rate limit and admission control, answered before any work.

- Rate limit: at most ``SEARCH_RATE_LIMIT`` searches per client and ``SEARCH_RATE_WINDOW_SECONDS`` (a fixed
  window counted in Redis, so every web process and machine shares it); over it: 429 with ``Retry-After``
  (the seconds left in the window). With Redis unreachable the limit is not enforced (logged): search must
  not fail because the broker is down.
- Admission control: at most ``SEARCH_MAX_IN_FLIGHT`` searches run at once in a process (a search is CPU
  bound: more at once only makes every one slower); one more waits up to ``SEARCH_ADMISSION_WAIT_MS`` for a
  slot, then gets 503 with ``Retry-After: 1`` at once instead of queueing behind the others, so accepted
  searches keep their latency and refused ones learn it in milliseconds.

- Per-client concurrency: at most ``SEARCH_MAX_PER_CLIENT`` searches of one client at once in a process;
  one more gets 429 with ``Retry-After: 1`` before the rate counter or the admission gate is touched. Fifty
  connections from one address then hold at most that many search slots and threads, whatever the rate
  limit says; checked first because it needs no Redis round trip. Behind the nginx front
  (deploy/nginx) the same limits are applied in nginx, which refuses without Python at all: this one is
  for deployments without it.

Every search is guarded, whichever way it comes: a photo posted to the search page or ``/api/search/``, a
batch (``/api/search/batch/``: it counts as its N photos against the rate, though it holds one slot), and
"more like this" (``/api/images/<id>/similar/``, or the search page's ``?similar=``). Everything else passes
untouched.

Refusals are cheap on purpose: the middleware sits first in ``MIDDLEWARE`` and decides from the path, the
method and a counter, before the session, the user or the body is looked at; the only work left is reading
and dropping the unread upload (see `_drain`). Each refusal says in ``Server-Timing`` how long the server
spent on it, so ``bench/load.py`` can tell time in Django from time spent waiting for a thread.
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

from webapp.metrics import REFUSALS

logger = logging.getLogger(__name__)

# The searches: URL name -> the methods that search (the search page's GET searches only with ?similar=).
SEARCH_VIEWS: dict[str, frozenset[str]] = {
    "search:search": frozenset({"POST", "GET"}),
    "api:search": frozenset({"POST"}),
    "api:search-batch": frozenset({"POST"}),
    "api:similar": frozenset({"GET"}),
}


@dataclass(frozen=True)
class Refusal:
    status: int  # 429 (this client asks too often) or 503 (the server is saturated)
    retry_after: int  # seconds
    message: str
    reason: str  # the refusals metric's label: client_concurrency | rate_limit | admission


@lru_cache(maxsize=4)
def _redis(url: str) -> Redis:
    return Redis.from_url(url, socket_timeout=0.2, socket_connect_timeout=0.2)


def client_key(request: HttpRequest) -> str:
    """Who is asking: the configured META key (REMOTE_ADDR, or a header set by a trusted proxy)."""
    raw = str(request.META.get(settings.CLIENT_IP_HEADER) or request.META.get("REMOTE_ADDR") or "unknown")
    return raw.split(",")[0].strip()[:64]


def check_rate(client: str, *, cost: int = 1, now: float | None = None) -> Refusal | None:
    """Count ``cost`` searches of ``client`` in the current window; a refusal once it is over the limit."""
    limit, window = settings.SEARCH_RATE_LIMIT, max(1, settings.SEARCH_RATE_WINDOW_SECONDS)
    if limit <= 0:
        return None
    now = time.time() if now is None else now
    slot = int(now // window)
    key = f"ratelimit:search:{client}:{slot}"
    try:
        pipe = _redis(settings.REDIS_URL).pipeline()
        pipe.incrby(key, max(0, cost))
        pipe.expire(key, window + 1)
        count = int(pipe.execute()[0])
    except RedisError as error:
        logger.warning("search rate limit not enforced, Redis unreachable: %s", error)
        return None
    if count <= limit:
        return None
    retry_after = max(1, int((slot + 1) * window - now + 0.999))
    message = f"Too many searches: at most {limit} per {window} s; retry later."
    return Refusal(429, retry_after, message, "rate_limit")


class ClientSlots:
    """At most ``per_client`` searches at once per client in this process (0: no limit)."""

    def __init__(self, per_client: int) -> None:
        self.per_client = per_client
        self._lock = threading.Lock()
        self._running: dict[str, int] = {}

    def try_enter(self, client: str) -> bool:
        if self.per_client <= 0:
            return True
        with self._lock:
            running = self._running.get(client, 0)
            if running >= self.per_client:
                return False
            self._running[client] = running + 1
            return True

    def leave(self, client: str) -> None:
        if self.per_client <= 0:
            return
        with self._lock:
            running = self._running.get(client, 0) - 1
            if running > 0:
                self._running[client] = running
            else:  # forget idle clients: the map holds only the ones searching now
                self._running.pop(client, None)


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


def refused(request: HttpRequest, refusal: Refusal, started: float | None = None) -> JsonResponse:
    """The refusal's response (429 or 503 with ``Retry-After``), after dropping the unread upload."""
    REFUSALS.labels(refusal.reason).inc()
    _drain(request)
    response = JsonResponse({"error": refusal.message}, status=refusal.status)
    response["Retry-After"] = str(refusal.retry_after)
    if started is not None:
        response["Server-Timing"] = f"refusal;dur={1000 * (time.perf_counter() - started):.1f}"
    return response


class SearchThrottleMiddleware:
    """Applies the per-client concurrency limit, the rate limit, then admission control, to searches
    (see the module docstring)."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response
        self.gate = AdmissionGate(settings.SEARCH_MAX_IN_FLIGHT)
        self.clients = ClientSlots(settings.SEARCH_MAX_PER_CLIENT)

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if not is_search(request):
            return self.get_response(request)
        started = time.perf_counter()
        client = client_key(request)
        if not self.clients.try_enter(client):
            at_once = settings.SEARCH_MAX_PER_CLIENT
            message = f"Too many searches at once: at most {at_once} per client; retry in a second."
            return refused(request, Refusal(429, 1, message, "client_concurrency"), started)
        try:
            refusal = check_rate(client)
            if refusal is not None:
                return refused(request, refusal, started)
            if not self.gate.try_enter(settings.SEARCH_ADMISSION_WAIT_MS / 1000):
                busy = "The server is busy with other searches; retry in a second."
                return refused(request, Refusal(503, 1, busy, "admission"), started)
            try:
                return self.get_response(request)
            finally:
                self.gate.leave()
        finally:
            self.clients.leave(client)


def is_search(request: HttpRequest) -> bool:
    """Whether the request runs a search (see `SEARCH_VIEWS`), from its method, path and query only."""
    if request.method not in {"GET", "POST"}:
        return False
    try:
        name = resolve(request.path_info).view_name
    except Resolver404:
        return False
    if request.method not in SEARCH_VIEWS.get(name, ()):
        return False
    return not (name == "search:search" and request.method == "GET" and "similar" not in request.GET)
