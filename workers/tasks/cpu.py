"""Tasks that need no model: they go to the ``cpu`` queue."""

from __future__ import annotations

from typing import Any

from celery import Task, shared_task

from webapp import task_names
from webapp.reranking import local_features
from webapp.search import retention
from workers.tasks.progress import reporter


@shared_task(name=task_names.PING)
def ping() -> str:
    """Health check used by tests and deployment probes."""
    return "pong"


@shared_task(name=task_names.EXTRACT_LOCAL_FEATURES, bind=True, acks_late=True)
def extract_local_features(self: Task[Any, Any], image_ids: list[int], force: bool = False) -> dict[str, int]:
    """SIFT (and VLAD, once a codebook exists) for a batch of images; idempotent."""
    return local_features.extract_local_features(
        image_ids, force=force, progress=reporter(self, "local features")
    )


@shared_task(name=task_names.PURGE_EXPIRED_QUERIES)
def purge_expired_queries() -> int:
    """Forget the query photos past QUERY_RETENTION_HOURS (scheduled by CELERY_BEAT_SCHEDULE)."""
    return retention.purge_expired_queries()
