"""A model version indexed with the multi-scale global descriptor, which is no longer computed, is retired by
the migration and refused everywhere it would be embedded with (search, indexing, activation), never served
at one size against a collection of vectors summed over several."""

from __future__ import annotations

import io

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.test import Client

from retrieval_core.models.embedding import EmbeddingConfig
from webapp.embeddings import services
from webapp.embeddings.models import EmbeddingModelVersion, RetiredVersionError

BEFORE = ("embeddings", "0003_embeddingmodelversion_scales")
AFTER = ("embeddings", "0004_retire_multi_scale_versions")
SINGLE = "lm_tf_efficientnet_lite0_imagenet_384_gem3"
MULTI = "lm_tf_efficientnet_lite0_imagenet_768_gem3_ms1_0p707"


@pytest.mark.django_db(transaction=True)
def test_the_migration_retires_multi_scale_versions_and_keeps_single_scale_ones() -> None:
    executor = MigrationExecutor(connection)
    executor.migrate([BEFORE])
    old = executor.loader.project_state([BEFORE]).apps.get_model("embeddings", "EmbeddingModelVersion")
    common = {"backbone": "tf_efficientnet_lite0", "weights": "imagenet", "gem_p": 3.0, "dim": 1280}
    single = old.objects.create(name="single", image_size=384, scales=[], collection_name=SINGLE, **common)
    multi = old.objects.create(
        name="multi", image_size=768, scales=[0.707], collection_name=MULTI, is_active=True, **common
    )

    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(executor.loader.graph.leaf_nodes())
    kept = EmbeddingModelVersion.objects.get(pk=single.pk)
    assert (kept.state, kept.collection_name) == (EmbeddingModelVersion.State.INDEXED, SINGLE)
    assert kept.config == EmbeddingConfig(image_size=384)
    retired = EmbeddingModelVersion.objects.get(pk=multi.pk)
    assert retired.state == EmbeddingModelVersion.State.RETIRED
    assert (retired.collection_name, retired.is_active) == (MULTI, True)  # kept: the operator decides
    with pytest.raises(RetiredVersionError, match="multi-scale global descriptor"):
        retired.config  # noqa: B018
    assert services.get_active_version().pk == retired.pk  # no other version is activated behind one's back


@pytest.fixture
def retired(db: None) -> EmbeddingModelVersion:
    return EmbeddingModelVersion.objects.create(
        name="multi",
        backbone="tf_efficientnet_lite0",
        weights="imagenet",
        image_size=768,
        dim=1280,
        collection_name=MULTI,
        state=EmbeddingModelVersion.State.RETIRED,
    )


def test_a_retired_version_cannot_be_activated(retired: EmbeddingModelVersion) -> None:
    with pytest.raises(ValueError, match="no longer computes"):
        services.activate_version(retired)
    retired.refresh_from_db()
    assert retired.state == EmbeddingModelVersion.State.RETIRED and not retired.is_active


def test_indexing_into_a_retired_version_is_refused(
    retired: EmbeddingModelVersion, scene_photo: bytes
) -> None:
    from webapp.catalog.services import register_image

    image = register_image(scene_photo, original_name="a.jpg", schedule=False).image
    with pytest.raises(RetiredVersionError):
        services.index_images([image.pk], version=retired)


def test_a_search_on_a_retired_active_version_is_refused_with_what_to_do(
    retired: EmbeddingModelVersion, client: Client, scene_photo: bytes
) -> None:
    EmbeddingModelVersion.objects.filter(pk=retired.pk).update(is_active=True)
    upload = io.BytesIO(scene_photo)
    upload.name = "query.jpg"
    response = client.post("/api/search/", {"image": upload})
    assert response.status_code == 409
    assert "register_model --activate" in response.json()["error"]
