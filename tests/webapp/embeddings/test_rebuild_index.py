"""rebuild_index: a collection made before the filter fields is re-created with them, and the whole
collection is queued for indexing again (real Milvus Lite server, a Redis database no worker reads)."""

from __future__ import annotations

import io
import json

import pytest
from django.core.management import call_command
from pymilvus import DataType, MilvusClient
from redis import Redis

from tests.conftest import LiveServices
from webapp import task_names
from webapp.catalog.models import Image
from webapp.catalog.services import register_image
from webapp.embeddings.services import clear_caches, get_active_version, get_store

pytestmark = [pytest.mark.services, pytest.mark.django_db(transaction=True)]


def test_rebuild_index_recreates_an_outdated_collection_and_queues_everything(
    live_services: LiveServices, empty_vector_store: None, isolated_broker: Redis, scene_photo: bytes
) -> None:
    image = register_image(scene_photo, original_name="a.jpg", source="a.jpg", schedule=False).image
    Image.objects.filter(pk=image.pk).update(status=Image.Status.INDEXED)
    version = get_active_version()
    client = MilvusClient(uri=live_services.milvus_uri)
    schema = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=False)
    schema.add_field("id", DataType.INT64, is_primary=True)
    schema.add_field("landmark_id", DataType.INT64)
    schema.add_field("vector", DataType.FLOAT_VECTOR, dim=version.dim)
    index = client.prepare_index_params()
    index.add_index(field_name="vector", index_type="HNSW", metric_type="IP", params={"M": 16})
    client.create_collection(version.collection_name, schema=schema, index_params=index)
    clear_caches()
    assert get_store(version).outdated

    out = io.StringIO()
    call_command("rebuild_index", stdout=out)
    assert "1 images queued" in out.getvalue()
    clear_caches()
    assert not get_store(version).outdated
    fields = {f["name"] for f in client.describe_collection(version.collection_name)["fields"]}
    assert {"taken_at", "gx", "gy", "gz"} <= fields
    assert Image.objects.get(pk=image.pk).status == Image.Status.PENDING
    queued = [json.loads(raw)["headers"]["task"] for raw in isolated_broker.lrange("gpu", 0, -1)]
    assert queued == [task_names.INDEX_IMAGES]
    client.close()
