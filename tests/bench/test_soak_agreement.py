"""bench/soak.py's agreement check on the real stores (SQLite catalogue, Milvus Lite, the SIFT files): it
passes when they agree by ids and names each way they can disagree."""

from __future__ import annotations

import numpy as np
import pytest

from bench import soak
from retrieval_core.datasets.synthetic import make_scene, render_view
from tests.conftest import LiveServices, encode_jpeg
from webapp.catalog.models import Image
from webapp.catalog.services import register_image
from webapp.embeddings.models import EmbeddingModelVersion
from webapp.embeddings.services import collection_store
from webapp.reranking.local_features import extract_local_features, sift_store

pytestmark = [pytest.mark.services, pytest.mark.django_db]
DIM = 8


@pytest.fixture
def version(
    live_services: LiveServices, empty_vector_store: None, settings, tmp_path
) -> EmbeddingModelVersion:
    settings.FEATURES_ROOT = tmp_path / "features"
    return EmbeddingModelVersion.objects.create(
        name="soak-test", backbone="b", weights="w", image_size=64, dim=DIM,
        collection_name="test_soak_agreement", is_active=True,
    )  # fmt: skip


def _indexed(seed: int) -> Image:
    view, _ = render_view(make_scene(seed, (120, 160)), np.random.default_rng(seed), out_size=(120, 160))
    image = register_image(encode_jpeg(view), original_name=f"{seed}.jpg", schedule=False).image
    Image.objects.filter(pk=image.pk).update(status=Image.Status.INDEXED)
    return image


def test_the_agreement_check_compares_catalogue_milvus_and_features_by_ids(
    version: EmbeddingModelVersion,
) -> None:
    a, b = _indexed(1), _indexed(2)
    extract_local_features([a.pk, b.pk])
    store = collection_store(version.collection_name, DIM)
    store.upsert([a.pk, b.pk], np.eye(DIM, dtype=np.float32)[:2], [None, None])
    store.flush()
    agreement = soak.check_agreement([a.pk])
    assert agreement.problems() == [], agreement
    assert (agreement.catalogue_indexed, agreement.milvus_rows, agreement.indexed_with_features) == (2, 2, 2)

    store.delete([b.pk])
    store.flush()
    sift_store().delete(a.pk)
    disagreeing = soak.check_agreement([a.pk, 424242])
    assert disagreeing.missing_in_milvus == [b.pk]
    assert disagreeing.indexed_without_features == [a.pk]
    assert disagreeing.lost_uploads == [424242]
    assert len(disagreeing.problems()) == 5  # the three above, and both counts that differ
