"""The indexing task through a real worker: idempotent, and failures are recorded, not lost."""

from __future__ import annotations

import os

import numpy as np
import pytest

from webapp.catalog.models import Image
from webapp.catalog.services import register_image
from webapp.embeddings.services import get_active_version, get_store
from workers.tasks.gpu import index_images

pytestmark = [pytest.mark.services, pytest.mark.django_db(transaction=True)]


def test_task_indexes_reports_and_is_idempotent(
    scene_photo: bytes, celery_worker_process: object, empty_vector_store: None
) -> None:
    good = register_image(scene_photo, original_name="good.jpg", source="a/good.jpg", schedule=False).image
    lost = register_image(
        scene_photo[:-7] + b"\xff\xd9xyz", original_name="lost.jpg", source="a/lost.jpg", schedule=False
    ).image
    os.remove(lost.file.path)  # the file vanished from storage after registration

    first = index_images.delay([good.pk, lost.pk]).get(timeout=120)
    assert first == {"indexed": 1, "failed": 1}
    good.refresh_from_db()
    lost.refresh_from_db()
    assert good.status == Image.Status.INDEXED and good.indexed_at is not None
    assert lost.status == Image.Status.FAILED and lost.index_error

    again = index_images.delay([good.pk]).get(timeout=120)
    assert again == {"indexed": 1, "failed": 0}
    assert get_store(get_active_version()).count() == 1  # upsert: re-indexing never duplicates


def test_a_relabel_during_embedding_reaches_the_index(scene_photo: bytes, empty_vector_store: None) -> None:
    from webapp.catalog.services import get_or_create_landmark
    from webapp.embeddings import services

    old, new = get_or_create_landmark("Old name"), get_or_create_landmark("New name")
    image = register_image(scene_photo, original_name="a.jpg", landmark=old, schedule=False).image

    def relabel_meanwhile(done: int, total: int) -> None:  # runs after embedding, before the upsert
        Image.objects.filter(pk=image.pk).update(landmark=new)

    services.index_images([image.pk], progress=relabel_meanwhile)
    version = get_active_version()
    hit = get_store(version).search(np.ones((1, version.dim), np.float32), k=1)[0][0]
    assert (hit.image_id, hit.landmark_id) == (image.pk, new.pk)
