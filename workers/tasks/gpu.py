"""Tasks that run a model: they go to the ``gpu`` queue."""

from __future__ import annotations

from celery import shared_task

from workers.tasks.progress import reporter


@shared_task(bind=True, acks_late=True, max_retries=3, default_retry_delay=10)
def index_images(self, image_ids: list[int]) -> dict[str, int]:
    """Embed and upsert a batch of images into the active model's collection (idempotent)."""
    from webapp.embeddings.services import index_images as index

    try:
        return index(image_ids, progress=reporter(self, "embedding"))
    except ConnectionError as error:  # Milvus restarting: try again later rather than lose the batch
        raise self.retry(exc=error) from error
