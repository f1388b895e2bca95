"""Search is rate-limited per client (429) and refuses at once when saturated (503), both with Retry-After."""

from __future__ import annotations

import io
import threading

import pytest
from django.http import HttpRequest, HttpResponse
from django.test import Client, RequestFactory

from tests.conftest import LiveServices
from webapp import localstack, throttling


@pytest.fixture
def fresh_limits(live_services: LiveServices, settings) -> None:
    from redis import Redis

    Redis.from_url(live_services.redis_url).delete(
        *Redis.from_url(live_services.redis_url).keys("ratelimit:*") or ["none"]
    )
    settings.SEARCH_RATE_LIMIT = 3
    settings.SEARCH_RATE_WINDOW_SECONDS = 60


@pytest.mark.django_db
def test_a_client_over_its_rate_gets_429_with_retry_after(fresh_limits: None) -> None:
    client = Client(REMOTE_ADDR="10.0.0.1")
    statuses = [client.post("/api/search/", {}).status_code for _ in range(3)]
    assert statuses == [400, 400, 400]  # reached the view (no photo sent)
    refused = client.post("/api/search/", {})
    assert refused.status_code == 429
    assert 1 <= int(refused["Retry-After"]) <= 61
    assert "Too many searches" in refused.json()["error"]
    assert client.post("/", {}).status_code == 429  # the search page counts too
    assert client.get("/").status_code == 200  # reading pages is not limited
    assert Client(REMOTE_ADDR="10.0.0.2").post("/api/search/", {}).status_code == 400  # another client


@pytest.mark.django_db
def test_the_limit_is_not_enforced_while_redis_is_unreachable(settings) -> None:
    settings.SEARCH_RATE_LIMIT = 1
    settings.REDIS_URL = f"redis://127.0.0.1:{localstack.free_port()}/0"
    client = Client()
    assert [client.post("/api/search/", {}).status_code for _ in range(3)] == [400, 400, 400]


def test_a_saturated_process_refuses_at_once_instead_of_queueing(settings) -> None:
    settings.SEARCH_RATE_LIMIT = 0
    settings.SEARCH_MAX_IN_FLIGHT = 2
    settings.SEARCH_ADMISSION_WAIT_MS = 0
    settings.SEARCH_MAX_PER_CLIENT = 0  # every request comes from the same address here
    release, entered = threading.Event(), threading.Semaphore(0)

    def slow_search(request: HttpRequest) -> HttpResponse:
        if request.method == "GET":
            return HttpResponse("a page")
        entered.release()
        release.wait(30)
        return HttpResponse("done")

    middleware = throttling.SearchThrottleMiddleware(slow_search)
    factory = RequestFactory()
    results: list[int] = []
    threads = [
        threading.Thread(target=lambda: results.append(middleware(factory.post("/api/search/")).status_code))
        for _ in range(2)
    ]
    for thread in threads:
        thread.start()
    for _ in threads:
        assert entered.acquire(timeout=10)
    refused = middleware(factory.post("/api/search/"))
    assert refused.status_code == 503 and refused["Retry-After"] == "1"
    assert middleware(factory.get("/")).status_code == 200  # not a search: passes while saturated
    release.set()
    for thread in threads:
        thread.join(10)
    assert results == [200, 200]
    assert middleware(factory.post("/api/search/")).status_code == 200  # slots are given back


def _photos(content: bytes, n: int) -> list[io.BytesIO]:
    handles = []
    for i in range(n):
        handle = io.BytesIO(content)
        handle.name = f"{i}.jpg"
        handles.append(handle)
    return handles


@pytest.mark.django_db
def test_a_batch_counts_as_its_photos(fresh_limits: None, scene_photo: bytes) -> None:
    """Rate 3: a batch of 3 uses the whole window (k=0 makes the view answer 400 once it has counted, so no
    search runs); a batch of 4 is refused at once, and so is the next single search."""
    client = Client(REMOTE_ADDR="10.0.1.1")
    batch = client.post("/api/search/batch/", {"images": _photos(scene_photo, 3), "k": "0"})
    assert batch.status_code == 400 and "k" in batch.json()["error"]  # counted, then reached the parameters
    refused = client.post("/api/search/", {})
    assert refused.status_code == 429 and int(refused["Retry-After"]) >= 1

    other = Client(REMOTE_ADDR="10.0.1.2")
    too_big = other.post("/api/search/batch/", {"images": _photos(scene_photo, 4), "k": "0"})
    assert too_big.status_code == 429 and "Too many searches" in too_big.json()["error"]
    assert too_big["Retry-After"]


@pytest.mark.django_db
def test_more_like_this_is_rate_limited_too(fresh_limits: None) -> None:
    client = Client(REMOTE_ADDR="10.0.2.1")
    assert client.get("/api/images/999999/similar/").status_code == 404  # counted, reached the view
    assert client.get("/", {"similar": "999999"}).status_code == 404  # the page's "more like this"
    assert client.get("/").status_code == 200  # the page itself is no search: not counted
    assert client.get("/api/images/999999/similar/").status_code == 404
    refused = client.get("/api/images/999999/similar/")
    assert refused.status_code == 429 and refused["Retry-After"]
    assert client.get("/", {"similar": "999999"}).status_code == 429


def test_a_refusal_says_how_long_the_server_spent_on_it(settings) -> None:
    settings.SEARCH_RATE_LIMIT = 0
    settings.SEARCH_MAX_IN_FLIGHT = 1
    settings.SEARCH_ADMISSION_WAIT_MS = 0
    middleware = throttling.SearchThrottleMiddleware(lambda request: HttpResponse("done"))
    assert middleware.gate.try_enter(0)  # the one slot is taken
    refused = middleware(RequestFactory().get("/api/images/1/similar/"))
    assert refused.status_code == 503
    name, _, duration = refused["Server-Timing"].partition(";dur=")
    assert name == "refusal" and float(duration) >= 0


def test_one_client_gets_at_most_its_searches_at_once_while_another_is_served(settings) -> None:
    """Two searches of 10.0.3.1 in flight: its third is refused at once (429, Retry-After) without a rate
    counter or a search slot, while 10.0.3.2 is served; once one finishes, 10.0.3.1 is served again."""
    settings.SEARCH_RATE_LIMIT = 0
    settings.SEARCH_MAX_IN_FLIGHT = 0
    settings.SEARCH_MAX_PER_CLIENT = 2
    release, entered = threading.Event(), threading.Semaphore(0)

    def slow_search(request: HttpRequest) -> HttpResponse:
        if request.META["REMOTE_ADDR"] == "10.0.3.1" and "hold" in request.GET:
            entered.release()
            release.wait(30)
        return HttpResponse("done")

    middleware = throttling.SearchThrottleMiddleware(slow_search)
    factory = RequestFactory()
    results: list[int] = []
    held = [
        threading.Thread(
            target=lambda: results.append(
                middleware(factory.post("/api/search/?hold=1", REMOTE_ADDR="10.0.3.1")).status_code
            )
        )
        for _ in range(2)
    ]
    for thread in held:
        thread.start()
    try:
        for _ in held:
            assert entered.acquire(timeout=10)
        refused = middleware(factory.post("/api/search/", REMOTE_ADDR="10.0.3.1"))
        assert refused.status_code == 429 and refused["Retry-After"] == "1"
        assert b"at once" in refused.content
        assert middleware(factory.post("/api/search/", REMOTE_ADDR="10.0.3.2")).status_code == 200
        assert middleware(factory.get("/", REMOTE_ADDR="10.0.3.1")).status_code == 200  # not a search
    finally:
        release.set()
        for thread in held:
            thread.join(10)
    assert results == [200, 200]
    assert middleware(factory.post("/api/search/", REMOTE_ADDR="10.0.3.1")).status_code == 200
    assert middleware.clients._running == {}  # idle clients are forgotten
