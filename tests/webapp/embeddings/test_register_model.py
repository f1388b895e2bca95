"""register_model: a new input size becomes its own version and collection, re-indexed blue/green on
--activate while search keeps the active version (real Milvus Lite server, a Redis database no worker
reads)."""

from __future__ import annotations

import io
import json

import pytest
from django.core.management import call_command
from redis import Redis

from tests.conftest import LiveServices
from webapp import task_names
from webapp.embeddings.models import EmbeddingModelVersion
from webapp.embeddings.services import get_active_version

pytestmark = [pytest.mark.services, pytest.mark.django_db(transaction=True)]


def test_register_model_at_a_new_input_size_then_activate_blue_green(
    live_services: LiveServices, empty_vector_store: None, isolated_broker: Redis
) -> None:
    active = get_active_version()
    out = io.StringIO()
    call_command("register_model", "--image-size", "320", stdout=out)
    version = EmbeddingModelVersion.objects.get(image_size=320)
    assert version.collection_name != active.collection_name
    assert (version.backbone, version.dim) == (active.backbone, active.dim)
    assert version.state == EmbeddingModelVersion.State.NEW and not version.is_active
    assert "activate it" in out.getvalue()

    call_command("register_model", "--image-size", "320", "--activate", stdout=io.StringIO())
    assert EmbeddingModelVersion.objects.filter(image_size=320).count() == 1
    version.refresh_from_db()
    assert version.state == EmbeddingModelVersion.State.INDEXING
    assert get_active_version().pk == active.pk  # search stays on the old version until the re-index ends
    queued = [json.loads(raw)["headers"] for raw in isolated_broker.lrange("gpu", 0, -1)]
    assert [(h["task"], h["argsrepr"]) for h in queued] == [(task_names.REINDEX_VERSION, f"({version.pk},)")]
