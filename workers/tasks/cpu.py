"""Tasks that need no model: they go to the ``cpu`` queue."""

from __future__ import annotations

from celery import Task, shared_task

from workers.tasks.progress import reporter


@shared_task
def ping() -> str:
    """Health check used by tests and deployment probes."""
    return "pong"


@shared_task(bind=True, acks_late=True)
def extract_local_features(self: Task, image_ids: list[int], force: bool = False) -> dict[str, int]:
    """SIFT (and VLAD, once a codebook exists) for a batch of images; idempotent."""
    from webapp.reranking.services import extract_local_features as extract  # Django must be set up

    return extract(image_ids, force=force, progress=reporter(self, "local features"))
