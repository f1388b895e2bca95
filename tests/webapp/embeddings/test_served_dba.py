"""Served DBA on the real Milvus Lite server: kept fresh as images arrive, equal to a full rebuild."""

from __future__ import annotations

import numpy as np
import pytest

from retrieval_core.datasets.synthetic import make_scene, render_view
from retrieval_core.search.dba import augment_database
from tests.conftest import encode_jpeg
from webapp.catalog.models import Image
from webapp.catalog.services import register_image
from webapp.embeddings import services

pytestmark = [pytest.mark.services, pytest.mark.django_db(transaction=True)]


def _photos(n: int) -> list[bytes]:
    rng = np.random.default_rng(3)
    return [
        encode_jpeg(render_view(make_scene(i // 2, (240, 320)), rng, out_size=(240, 320))[0])
        for i in range(n)
    ]


def test_vectors_stay_augmented_as_images_arrive_and_leave(settings, empty_vector_store: None) -> None:
    settings.INDEX_DBA_NEIGHBOURS = 2
    images = [
        register_image(photo, original_name=f"{i}.jpg", schedule=False).image
        for i, photo in enumerate(_photos(8))
    ]
    ids = [image.pk for image in images]
    services.index_images(ids[:5])
    services.index_images(ids[5:])  # arrivals: their neighbours' augmented vectors must follow

    version = services.get_active_version()
    raw = services.raw_store(version)
    assert raw is not None and raw.count() == 8
    raw_vectors = raw.get_vectors(ids)
    expected = augment_database(np.stack([raw_vectors[pk] for pk in ids]), neighbours=2)
    served = services.get_store(version).get_vectors(ids)
    assert Image.objects.filter(status=Image.Status.INDEXED).count() == 8
    for row, pk in enumerate(ids):
        np.testing.assert_allclose(served[pk], expected[row], atol=1e-4, err_msg=f"image {pk}")
    assert not np.allclose(served[ids[0]], raw_vectors[ids[0]], atol=1e-3)  # really augmented

    services.delete_vectors(version, [ids[0]])
    assert ids[0] not in services.get_store(version).get_vectors(ids)
    assert ids[0] not in raw.get_vectors(ids)


def test_dba_off_keeps_one_collection(settings, empty_vector_store: None) -> None:
    settings.INDEX_DBA_NEIGHBOURS = 0
    image = register_image(_photos(1)[0], original_name="a.jpg", schedule=False).image
    services.index_images([image.pk])
    version = services.get_active_version()
    assert services.raw_store(version) is None
    assert services.get_store(version).count() == 1
