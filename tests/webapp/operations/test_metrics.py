"""/metrics, the workers' metrics port and the request id, on the real stack (Redis, Milvus Lite, a Celery
worker): photos imported and searched, then the series read back as Prometheus would read them."""

from __future__ import annotations

import io
import time
import urllib.request
from pathlib import Path

import pytest
from celery import Celery
from django.core.management import call_command
from django.test import Client
from prometheus_client.parser import text_string_to_metric_families
from pymilvus.exceptions import MilvusException
from redis import Redis

from tests import environment
from tests.conftest import LiveServices, write_query_split
from webapp import localstack
from webapp.catalog.models import Image
from webapp.embeddings.services import clear_caches, collection_store, get_active_version, get_store
from webapp.operations import services

pytestmark = [pytest.mark.services, pytest.mark.django_db(transaction=True)]

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def _parse(text: str) -> Samples:
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def _scrape(client: Client) -> Samples:
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain")
    return _parse(response.content.decode())


def _value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def test_a_search_shows_in_the_latency_stage_catalogue_and_worker_series(
    tmp_path: Path, celery_worker_process: object, empty_vector_store: None, client: Client
) -> None:
    queries = write_query_split(tmp_path, n_landmarks=2, views=4, seed=41)
    call_command("import_images", str(tmp_path / "collection"), "--timeout", "300", verbosity=0)
    before = _scrape(client)
    with next(iter(queries.values())).open("rb") as photo:
        response = client.post("/api/search/", {"image": photo}, HTTP_X_REQUEST_ID="search-41")
    assert response.status_code == 200
    assert response["X-Request-ID"] == "search-41"
    timings = response.json()["timings_ms"]
    after = _scrape(client)

    route = {"route": "api:search", "method": "POST", "status": "200"}
    count = "landmarks_http_request_duration_seconds_count"
    assert _value(after, count, **route) == _value(before, count, **route) + 1
    assert _value(after, "landmarks_http_request_duration_seconds_sum", **route) > 0
    # Every stage the response reports is observed once more, with the same duration.
    for stage in ("decode", "embed", "ann", "fuse", "catalogue", "total"):
        assert stage in timings
        added = _value(after, "landmarks_search_stage_duration_seconds_count", stage=stage) - _value(
            before, "landmarks_search_stage_duration_seconds_count", stage=stage
        )
        assert added == 1, stage
        seconds = _value(after, "landmarks_search_stage_duration_seconds_sum", stage=stage) - _value(
            before, "landmarks_search_stage_duration_seconds_sum", stage=stage
        )
        assert seconds == pytest.approx(timings[stage] / 1000, rel=1e-6, abs=1e-6)
    assert _value(after, "landmarks_catalogue_images", status="indexed") == 6
    assert _value(after, "landmarks_catalogue_images", status="pending") == 0
    assert ("landmarks_celery_queue_length", frozenset({("queue", "cpu")})) in after
    assert ("landmarks_celery_queue_length", frozenset({("queue", "gpu")})) in after

    worker_text = urllib.request.urlopen(
        f"http://127.0.0.1:{environment.WORKER_METRICS_PORT}/metrics", timeout=10
    ).read()
    worker = _parse(worker_text.decode())
    assert _value(worker, "landmarks_images_indexed_total") >= 6
    index_task = "workers.tasks.gpu.index_images"
    assert _value(worker, "landmarks_celery_tasks_total", task=index_task, state="succeeded") >= 1
    assert _value(worker, "landmarks_celery_task_duration_seconds_count", task=index_task) >= 1
    assert _value(worker, "landmarks_celery_task_duration_seconds_sum", task=index_task) > 0

    # Drift: a vector lost from Milvus is found by the reconciler and shows in the metrics.
    lost = Image.objects.order_by("pk").first()
    store = get_store(get_active_version())
    store.delete([lost.pk])
    store.flush()
    Image.objects.filter(pk=lost.pk).update(indexed_at=None)
    run = services.reconcile(stale_seconds=0).run
    assert run is not None and run.missing_vectors == 1
    drift = _scrape(client)
    assert _value(drift, "landmarks_reconcile_drift", kind="missing_vectors") == 1
    assert _value(drift, "landmarks_reconcile_rows", source="milvus") == 5
    assert _value(drift, "landmarks_reconcile_resent_total", kind="missing_vectors") >= 1


def test_the_request_id_reaches_the_log_lines_of_the_tasks_it_queued(
    uploader_client: Client, scene_photo: bytes, celery_worker_process: object, empty_vector_store: None
) -> None:
    photo = io.BytesIO(scene_photo)
    photo.name = "traced.jpg"
    request_id = f"upload-{time.monotonic_ns()}"
    response = uploader_client.post(
        "/collection/", {"photos": [photo], "landmark": "Traced"}, HTTP_X_REQUEST_ID=request_id
    )
    assert response.status_code == 302 and response["X-Request-ID"] == request_id
    log = environment.RUN_DIR / "worker.log"
    deadline = time.monotonic() + 120
    tagged: list[str] = []
    while time.monotonic() < deadline:
        tagged = [line for line in log.read_text().splitlines() if f"[{request_id}]" in line]
        if any("index_images" in line and "succeeded" in line for line in tagged):
            break
        time.sleep(0.5)
    assert any("index_images" in line and "succeeded" in line for line in tagged), tagged
    # Without a header, every response still carries a fresh id; a forged one is replaced.
    fresh = uploader_client.get("/healthz/")
    assert len(fresh["X-Request-ID"]) == 32
    forged = uploader_client.get("/healthz/", HTTP_X_REQUEST_ID="evil\nline")
    assert forged["X-Request-ID"] != "evil\nline" and len(forged["X-Request-ID"]) == 32


def test_refusals_and_queue_depths_are_counted(
    live_services: LiveServices, settings: object, client: Client
) -> None:
    redis = Redis.from_url(live_services.redis_url)
    redis.delete(*redis.keys("ratelimit:*") or ["none"])
    settings.SEARCH_RATE_LIMIT = 1  # type: ignore[attr-defined]
    before = _scrape(client)
    statuses = [Client(REMOTE_ADDR="10.9.9.9").post("/api/search/", {}).status_code for _ in range(3)]
    assert statuses == [400, 429, 429]
    after = _scrape(client)
    added = _value(after, "landmarks_search_refusals_total", reason="rate_limit") - _value(
        before, "landmarks_search_refusals_total", reason="rate_limit"
    )
    assert added == 2
    refused = {"route": "api:search", "method": "POST", "status": "429"}
    assert _value(after, "landmarks_http_request_duration_seconds_count", **refused) >= 2

    # Tasks waiting in a broker no worker reads: the queue depth is what Celery put in Redis.
    broker = live_services.redis_url.rsplit("/", 1)[0] + "/2"
    Redis.from_url(broker).flushdb()
    settings.CELERY_BROKER_URL = broker  # type: ignore[attr-defined]
    app = Celery("queue-depth-under-test", set_as_current=False)
    app.conf.update(broker_url=broker, task_default_queue="cpu")
    for _ in range(3):
        app.send_task("workers.tasks.cpu.ping", queue="cpu")
    app.send_task("workers.tasks.gpu.index_images", args=[[1]], queue="gpu")
    queued = _scrape(client)
    assert _value(queued, "landmarks_celery_queue_length", queue="cpu") == 3
    assert _value(queued, "landmarks_celery_queue_length", queue="gpu") == 1
    Redis.from_url(broker).flushdb()


def test_milvus_errors_are_counted_and_readiness_names_the_failing_part(
    live_services: LiveServices, settings: object, client: Client
) -> None:
    ready = client.get("/readyz", HTTP_HOST="localhost")
    assert ready.status_code == 200, ready.json()
    assert ready.json()["checks"] == {"database": "ok", "redis": "ok", "milvus": "ok", "collection": "ok"}

    before = _scrape(client)
    settings.MILVUS_URI = f"http://127.0.0.1:{localstack.free_port()}"  # type: ignore[attr-defined]
    clear_caches()
    try:
        with pytest.raises(MilvusException):
            collection_store("test_unreachable", 8)
        down = client.get("/readyz")
    finally:
        clear_caches()
    assert down.status_code == 503
    body = down.json()
    assert body["failing"] == ["milvus", "collection"] and body["checks"]["redis"] == "ok"
    after = _scrape(client)
    for operation in ("connect", "readiness"):
        added = _value(after, "landmarks_milvus_errors_total", operation=operation) - _value(
            before, "landmarks_milvus_errors_total", operation=operation
        )
        assert added == 1, operation
