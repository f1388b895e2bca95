"""A PCA-whitening learnt on the collection (no labels) becomes a model version that is rolled out
blue/green and served: searches then run on its lower-dimensional vectors."""

from __future__ import annotations

import io
import time
from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import Client

from retrieval_core.datasets.synthetic import write_collection
from webapp.embeddings.models import EmbeddingModelVersion
from webapp.embeddings.services import collection_store, get_active_version

pytestmark = [pytest.mark.services, pytest.mark.django_db(transaction=True)]


def test_learnt_whitening_is_a_version_that_serves_searches(
    tmp_path: Path, celery_worker_process: object, empty_vector_store: None, client: Client
) -> None:
    root = tmp_path / "collection"
    write_collection(root, n_landmarks=3, views_per_landmark=4, seed=51)
    call_command("import_images", str(root), "--timeout", "300", verbosity=0)
    base = get_active_version()
    with pytest.raises(CommandError, match="more than 64 indexed images"):
        call_command("learn_whitening", "--dim", "64")

    out = io.StringIO()
    call_command("learn_whitening", "--dim", "8", "--activate", stdout=out)
    version = EmbeddingModelVersion.objects.exclude(pk=base.pk).get()
    assert version.dim == 8 and "PCA-whitening 8" in version.name and "re-indexing" in out.getvalue()

    photo = next(root.glob("*/*.jpg")).read_bytes()
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and not EmbeddingModelVersion.objects.get(pk=version.pk).is_active:
        time.sleep(0.5)
    assert get_active_version().pk == version.pk
    assert collection_store(version.collection_name, 8, create=False).count() == 12
    response = client.post("/api/search/", {"image": io.BytesIO(photo), "rerank": "none"})
    assert response.status_code == 200, response.content
    payload = response.json()
    assert payload["model_version"] == version.name
    assert payload["results"][0]["global_score"] == pytest.approx(1.0, abs=1e-3)  # the photo itself
    with pytest.raises(CommandError, match="whitened already"):
        call_command("learn_whitening", "--dim", "4")
