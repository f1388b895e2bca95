"""Tasks that run a model: they go to the ``gpu`` queue."""

from __future__ import annotations

import logging
from typing import Any

from celery import Task, shared_task
from pymilvus.exceptions import MilvusException

from webapp import task_names
from webapp.embeddings import services as embeddings
from webapp.evaluation import services as evaluation
from webapp.training import services as training
from workers.tasks.progress import reporter

logger = logging.getLogger(__name__)
_TRANSIENT = (ConnectionError, TimeoutError, MilvusException)
_INDEX_RETRIES = 3


@shared_task(
    name=task_names.INDEX_IMAGES, bind=True, acks_late=True, max_retries=_INDEX_RETRIES, default_retry_delay=5
)
def index_images(self: Task[Any, Any], image_ids: list[int]) -> dict[str, int]:
    """Embed and upsert a batch of images into the active model's collection (idempotent).

    A vector-store or network error is retried; once the retries are spent the images are marked failed
    with the reason, so none stays "waiting" forever.
    """
    try:
        return embeddings.index_images(image_ids, progress=reporter(self, "embedding"))
    except _TRANSIENT as error:
        if self.request.retries < _INDEX_RETRIES:
            logger.warning("indexing %d images failed (%s); retrying", len(image_ids), error)
            raise self.retry(exc=error) from error
        embeddings.mark_failed(image_ids, [f"vector store unavailable: {error}"] * len(image_ids))
        raise


@shared_task(name=task_names.EVALUATE_COLLECTION, bind=True, acks_late=True)
def evaluate_collection(self: Task[Any, Any], run_id: int) -> dict[str, object]:
    """Run the E1-E7 ladder of a stored EvaluationRun; progress goes into the run and the result backend."""
    report = reporter(self, "evaluation")
    run = evaluation.execute_run(run_id, progress_hook=lambda stage, done, total: report(done, total))
    return {"run": run.pk, "status": run.status}


@shared_task(name=task_names.REINDEX_VERSION, bind=True, acks_late=True)
def reindex_version(self: Task[Any, Any], version_id: int) -> None:
    """Blue/green re-index into a new model version's collection, then switch search to it."""
    embeddings.reindex_version(version_id, progress=reporter(self, "re-indexing"))


@shared_task(name=task_names.TRAIN_MODEL, bind=True, acks_late=True)
def train_model(self: Task[Any, Any], run_id: int) -> dict[str, object]:
    """Train a TrainingRun; epoch, step, loss and validation mAP go into the run as it goes.

    acks_late + prefetch 1: a worker that dies mid-run leaves the task to be redelivered, and the run
    resumes from its last checkpoint (the broker's visibility timeout is longer than a training run).
    """
    report = reporter(self, "training")
    run = training.execute_run(run_id, on_event=lambda event: report(event.step, event.total_steps))
    return {"run": run.pk, "status": run.status}
