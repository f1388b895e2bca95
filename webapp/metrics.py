"""The product's Prometheus metrics, recorded where the work happens and exposed at ``/metrics`` (web) and on
each Celery worker's metrics port (`webapp.operations.task_metrics`).

Everything here is a ``prometheus_client`` metric in the process's default registry. A process started with
``PROMETHEUS_MULTIPROC_DIR`` set (gunicorn with several workers, ``deploy/gunicorn.conf.py``; a prefork Celery
pool) writes its values to files in that folder and `exposition` adds up every process's files, so a scrape
sees the whole server, not the one worker process that happened to answer it.

Values read at scrape time (queue depths, the catalogue's counts, the last reconcile run) are collectors of
`webapp.operations.collectors`, not metrics here: they are true whichever process does the work.
"""

from __future__ import annotations

import functools
import os
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any, TypeVar, cast

from django.http import HttpRequest, HttpResponse
from django.urls import Resolver404, resolve
from prometheus_client import (
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector
from pymilvus.exceptions import MilvusException

if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):  # made before any process writes its files there
    os.makedirs(os.environ["PROMETHEUS_MULTIPROC_DIR"], exist_ok=True)
# The *_created series double the output, and no panel or alert here reads them.
disable_created_metrics()  # type: ignore[no-untyped-call]

# Seconds: a refusal (ms) to a slow upload or a cold model (tens of seconds).
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
# Seconds: a task runs from milliseconds (ping, purge) to hours (training, re-indexing).
TASK_BUCKETS = (0.1, 0.5, 1.0, 5.0, 15.0, 60.0, 300.0, 900.0, 3600.0, 4 * 3600.0)

REQUEST_LATENCY = Histogram(
    "landmarks_http_request_duration_seconds",
    "Time to answer a request, by URL name (route), method and status code.",
    ["route", "method", "status"],
    buckets=LATENCY_BUCKETS,
)
SEARCH_STAGE = Histogram(
    "landmarks_search_stage_duration_seconds",
    "Time each stage of a search took (the search pipeline's own timings: decode, embed, ann, rerank_*, "
    "fuse, catalogue, total).",
    ["stage"],
    buckets=LATENCY_BUCKETS,
)
REFUSALS = Counter(
    "landmarks_search_refusals_total",
    "Searches refused before any work: client_concurrency (429, too many at once from one client), "
    "rate_limit (429) or admission (503, the server is saturated).",
    ["reason"],
)
MILVUS_ERRORS = Counter(
    "landmarks_milvus_errors_total",
    "Calls to Milvus that failed (server unreachable, timeouts, server errors), by store operation.",
    ["operation"],
)
IMAGES_INDEXED = Counter(
    "landmarks_images_indexed_total", "Photos embedded and stored in Milvus (searchable), by the workers."
)
IMAGES_INDEX_FAILED = Counter(
    "landmarks_images_index_failed_total", "Photos the workers could not index (unreadable files)."
)
RECONCILE_RESENT = Counter(
    "landmarks_reconcile_resent_total",
    "Work the reconciler found lost and sent again, or vectors it deleted, by kind.",
    ["kind"],
)
TASKS = Counter(
    "landmarks_celery_tasks_total",
    "Celery tasks finished by the workers, by task name and state (succeeded, failed, retried).",
    ["task", "state"],
)
TASK_DURATION = Histogram(
    "landmarks_celery_task_duration_seconds",
    "Time a Celery task ran in a worker, by task name.",
    ["task"],
    buckets=TASK_BUCKETS,
)
TASKS_RUNNING = Gauge(
    "landmarks_celery_tasks_running",
    "Celery tasks running now, by task name.",
    ["task"],
    multiprocess_mode="livesum",
)


def multiprocess_dir() -> str | None:
    """The folder of per-process metric files, or None when this process keeps its metrics in memory."""
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR") or None


class _DefaultRegistry(Collector):
    """This process's own metrics (single-process mode), inside a scrape-time registry."""

    def collect(self) -> Iterable[Any]:
        return REGISTRY.collect()


def scrape_registry(extra: Iterable[Collector] = ()) -> CollectorRegistry:
    """A registry for one scrape: every process's metrics (multiprocess) or this one's, plus ``extra``."""
    registry = CollectorRegistry(auto_describe=False)
    if multiprocess_dir():
        MultiProcessCollector(registry)  # type: ignore[no-untyped-call]  # prometheus_client leaves it unannotated
    else:
        registry.register(_DefaultRegistry())
    for collector in extra:
        registry.register(collector)
    return registry


def exposition(extra: Iterable[Collector] = ()) -> bytes:
    """The Prometheus text format of `scrape_registry`."""
    return generate_latest(scrape_registry(extra))


def observe_search(timings_ms: Mapping[str, float]) -> None:
    """Record a finished search's per-stage milliseconds (``SearchResponse.timings_ms``)."""
    for stage, milliseconds in timings_ms.items():
        SEARCH_STAGE.labels(stage).observe(milliseconds / 1000)


StoreT = TypeVar("StoreT")
_MILVUS_FAILURES = (MilvusException, ConnectionError, TimeoutError)


class _MeteredStore:
    """Forwards every attribute to the store; a public method that raises a Milvus, connection or timeout
    error counts one `MILVUS_ERRORS` under its name, then re-raises. Wrapped here, in the webapp, so the
    library's store (retrieval_core) stays free of metrics, and every caller (search, indexing, the
    reconciler, analysis) is counted alike."""

    def __init__(self, store: object) -> None:
        self._store = store

    def __getattr__(self, name: str) -> Any:
        value = getattr(self._store, name)
        if name.startswith("_") or not callable(value):
            return value

        @functools.wraps(value)
        def counted(*args: Any, **kwargs: Any) -> Any:
            try:
                return value(*args, **kwargs)
            except _MILVUS_FAILURES:
                MILVUS_ERRORS.labels(name).inc()
                raise

        return counted


def metered_store(connect: Callable[[], StoreT]) -> StoreT:
    """The Milvus vector store ``connect`` makes, with its failed calls counted in `MILVUS_ERRORS` (a failed
    connection as ``connect``: the store's client connects when it is made)."""
    try:
        store = connect()
    except _MILVUS_FAILURES:
        MILVUS_ERRORS.labels("connect").inc()
        raise
    return cast(StoreT, _MeteredStore(store))


class RequestMetricsMiddleware:
    """Times every request into `REQUEST_LATENCY`, labelled by URL name (bounded: never the raw path).

    First in ``MIDDLEWARE``, so the refusals of the throttling middleware are timed too."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        started = time.perf_counter()
        response = self.get_response(request)
        method = request.method if request.method in _METHODS else "other"  # a client names any method
        REQUEST_LATENCY.labels(route_name(request), method, str(response.status_code)).observe(
            time.perf_counter() - started
        )
        return response


_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


def route_name(request: HttpRequest) -> str:
    """The URL name of the request's view (``api:search``), or ``unmatched``."""
    match = request.resolver_match
    if match is None:
        try:
            match = resolve(request.path_info)
        except Resolver404:
            return "unmatched"
    return match.view_name
