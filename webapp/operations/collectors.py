"""Metrics read at scrape time, from the places that hold the truth whichever process did the work: the
Celery queues in Redis, the catalogue and the last reconcile run in the database.

Each collector answers what it can: an unreachable Redis or database leaves its series out of that scrape
(and says so in ``landmarks_<part>_scrape_failed``) instead of failing the whole ``/metrics`` answer.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache

from django.conf import settings
from django.db import DatabaseError
from django.db.models import Count
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from redis import Redis
from redis.exceptions import RedisError

from webapp.catalog.models import Image
from webapp.operations.models import ReconcileRun
from webapp.operations.services import DRIFT_KINDS

logger = logging.getLogger(__name__)

# Kombu's Redis transport keeps a queue's messages of priority p > 0 in a list of their own,
# "<queue>\x06\x16p".
_PRIORITY_SUFFIXES = ("", *(f"\x06\x16{p}" for p in range(1, 10)))


def celery_queues() -> list[str]:
    """The queues the routes name, the default one included (``cpu``, ``gpu``)."""
    routed = {str(route["queue"]) for route in settings.CELERY_TASK_ROUTES.values()}
    return sorted(routed | {settings.CELERY_TASK_DEFAULT_QUEUE})


@lru_cache(maxsize=4)
def _redis(url: str) -> Redis:
    return Redis.from_url(url, socket_timeout=1.0, socket_connect_timeout=1.0)


@dataclass(frozen=True)
class QueueDepths:
    """Tasks waiting in each Celery queue, and tasks handed to a worker and not yet acknowledged."""

    waiting: dict[str, int]
    unacked: int


def read_queue_depths() -> QueueDepths:
    """The Redis list lengths of every queue (all priorities summed); raises `RedisError` if unreachable."""
    queues = celery_queues()
    pipe = _redis(settings.CELERY_BROKER_URL).pipeline()
    for queue in queues:
        for suffix in _PRIORITY_SUFFIXES:
            pipe.llen(queue + suffix)
    pipe.hlen("unacked")
    lengths = [int(n) for n in pipe.execute()]
    per_queue = len(_PRIORITY_SUFFIXES)
    waiting = {
        queue: sum(lengths[position * per_queue : (position + 1) * per_queue])
        for position, queue in enumerate(queues)
    }
    return QueueDepths(waiting, lengths[-1])


class QueueCollector(Collector):
    """``landmarks_celery_queue_length{queue}``: tasks waiting in each Celery queue (the Redis lists), and
    ``landmarks_celery_unacked_tasks``: tasks handed to a worker and not yet acknowledged."""

    def collect(self) -> Iterator[Metric]:
        try:
            depths = read_queue_depths()
        except RedisError as error:
            logger.warning("queue depths not scraped, Redis unreachable: %s", error)
            yield _scrape_error("queues")
            return
        depth = GaugeMetricFamily(
            "landmarks_celery_queue_length", "Tasks waiting in a Celery queue.", labels=["queue"]
        )
        for queue, waiting in depths.waiting.items():
            depth.add_metric([queue], waiting)
        yield depth
        yield GaugeMetricFamily(
            "landmarks_celery_unacked_tasks",
            "Tasks delivered to a worker and not yet acknowledged (running, or lost with their worker).",
            value=depths.unacked,
        )


class CatalogueCollector(Collector):
    """``landmarks_catalogue_images{status}`` and the last reconcile run's drift, by kind."""

    def collect(self) -> Iterator[Metric]:
        try:
            counts = dict(Image.objects.values_list("status").annotate(n=Count("pk")).order_by())
            last = ReconcileRun.objects.filter(finished_at__isnull=False).order_by("-finished_at").first()
        except DatabaseError as error:
            logger.warning("catalogue metrics not scraped, database unreachable: %s", error)
            yield _scrape_error("database")
            return
        images = GaugeMetricFamily(
            "landmarks_catalogue_images", "Photos in the catalogue, by indexing status.", labels=["status"]
        )
        for status in Image.Status.values:
            images.add_metric([status], counts.get(status, 0))
        yield images
        if last is None or last.finished_at is None:
            return
        drift = GaugeMetricFamily(
            "landmarks_reconcile_drift",
            "What the last reconcile run found out of step (and re-sent or deleted), by kind.",
            labels=["kind"],
        )
        for field in DRIFT_KINDS:
            drift.add_metric([field], getattr(last, field))
        yield drift
        yield GaugeMetricFamily(
            "landmarks_reconcile_last_run_timestamp_seconds",
            "When the last reconcile run finished (Unix time).",
            value=last.finished_at.timestamp(),
        )
        yield GaugeMetricFamily(
            "landmarks_reconcile_last_run_failed",
            "1 when the last reconcile run could not compare everything (e.g. Milvus unreachable).",
            value=1.0 if last.error else 0.0,
        )
        rows = GaugeMetricFamily(
            "landmarks_reconcile_rows",
            "Indexed photos in the catalogue and vectors in the active collection at the last reconcile run.",
            labels=["source"],
        )
        rows.add_metric(["catalogue_indexed"], last.catalogue_indexed)
        rows.add_metric(["milvus"], last.vector_rows)
        yield rows


def _scrape_error(part: str) -> Metric:
    name, text = f"landmarks_{part}_scrape_failed", f"1: the {part} could not be read in this scrape."
    return GaugeMetricFamily(name, text, value=1.0)
