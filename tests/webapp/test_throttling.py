"""Search is rate-limited per client (429) and refuses at once when saturated (503), both with Retry-After."""

from __future__ import annotations

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
