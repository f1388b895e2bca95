"""Dataset analysis tasks (``cpu`` queue): quality per image, near-duplicates and label noise per landmark.

Every task is idempotent: re-running overwrites the analysis with fresh results, never a curator's verdict.
"""

from __future__ import annotations

import logging
from typing import Any

from celery import Task, shared_task
from pymilvus.exceptions import MilvusException

from webapp import task_names
from webapp.curation import analysis
from workers.tasks.progress import reporter

logger = logging.getLogger(__name__)
_TRANSIENT = (ConnectionError, TimeoutError, MilvusException)
# Neighbour analysis waits for its landmarks to be indexed: up to about 8 hours, polling every 3-30 s.
_WAIT_RETRIES = 1000


@shared_task(name=task_names.ANALYSE_COLLECTION, acks_late=True)
def analyse_collection(image_ids: list[int]) -> dict[str, int]:
    """Ask for the analysis of newly registered images (dispatched by the catalogue on commit, once per
    batch of an import): requests are coalesced into one `analyse_pending` run."""
    return analysis.request_analysis(image_ids)


@shared_task(name=task_names.ANALYSE_PENDING, bind=True, acks_late=True, max_retries=_WAIT_RETRIES)
def analyse_pending(self: Task[Any, Any]) -> dict[str, int]:
    """The one queued run of the coalesced analysis: waits while requests keep coming or the images are
    still being indexed (so it never competes with ingestion), then fans out the analysis of them all."""
    wait = analysis.pending_analysis_wait()
    if wait > 0 and self.request.retries < _WAIT_RETRIES:
        raise self.retry(countdown=wait)
    return analysis.run_pending_analysis()


@shared_task(name=task_names.ANALYSE_IMAGES, bind=True, acks_late=True)
def analyse_images(self: Task[Any, Any], image_ids: list[int]) -> dict[str, int]:
    """Grayscale, size, blur and exact duplicates of a batch of images."""
    return analysis.analyse_quality(image_ids, progress=reporter(self, "quality"))


@shared_task(name=task_names.ANALYSE_LANDMARKS, bind=True, acks_late=True, max_retries=_WAIT_RETRIES)
def analyse_landmarks(self: Task[Any, Any], landmark_ids: list[int | None]) -> dict[str, int]:
    """Near-duplicates and label-noise scores of these landmarks' images (None: the unlabelled ones).

    Runs once none of their images waits for indexing (their vectors are what is compared); after the
    retries it analyses what is indexed by then rather than nothing.
    """
    retries = self.request.retries
    if analysis.images_waiting_for_index(landmark_ids) and retries < _WAIT_RETRIES:
        raise self.retry(countdown=min(30, 3 * (retries + 1)))
    try:
        return analysis.analyse_neighbours(landmark_ids, progress=reporter(self, "neighbours"))
    except _TRANSIENT as error:
        if retries >= _WAIT_RETRIES:
            raise
        logger.warning("neighbour analysis of %d landmarks failed (%s); retrying", len(landmark_ids), error)
        raise self.retry(exc=error, countdown=10) from error
