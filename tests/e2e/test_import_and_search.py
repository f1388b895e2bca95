"""The whole product on real parts: import → Celery worker indexes into Milvus → search by photo."""

from __future__ import annotations

import io
import time
from pathlib import Path

import numpy as np
import pytest
from django.core.management import call_command
from django.test import Client

from tests.conftest import write_query_split
from webapp.catalog.models import Image
from webapp.catalog.selectors import indexing_progress
from webapp.embeddings.services import get_active_version, get_store

pytestmark = [pytest.mark.services, pytest.mark.django_db(transaction=True)]


def test_new_view_of_a_landmark_retrieves_it_first(
    tmp_path: Path, celery_worker_process: object, empty_vector_store: None, client: Client
) -> None:
    queries = write_query_split(tmp_path, n_landmarks=4, views=6, seed=11)
    call_command("import_images", str(tmp_path / "collection"), "--timeout", "600", verbosity=0)

    progress = indexing_progress()
    assert (progress.total, progress.indexed, progress.failed) == (20, 20, 0)
    assert get_store(get_active_version()).count() == 20

    # Importing again registers nothing twice and indexes nothing twice.
    call_command("import_images", str(tmp_path / "collection"), "--timeout", "60", verbosity=0)
    assert Image.objects.count() == 20
    assert get_store(get_active_version()).count() == 20

    for landmark, query in queries.items():
        with query.open("rb") as photo:
            response = client.post("/api/search/", {"image": photo})
        assert response.status_code == 200, response.content
        results = response.json()["results"]
        assert len(results) == 10
        assert results[0]["landmark"]["name"] == landmark
        scores = [hit["score"] for hit in results]
        assert scores == sorted(scores, reverse=True)
        assert {hit["rank"] for hit in results} == set(range(1, 11))


def test_photos_uploaded_in_the_collection_page_get_indexed_in_the_background(
    client: Client, scene_photo: bytes, celery_worker_process: object, empty_vector_store: None
) -> None:
    photo = io.BytesIO(scene_photo)
    photo.name = "new.jpg"
    response = client.post("/collection/", {"photos": [photo], "landmark": "Uploaded place"})
    assert response.status_code == 302
    image = Image.objects.get()
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        progress = client.get("/api/collection/progress/", {"ids": str(image.pk)}).json()
        if progress["pending"] == 0:
            break
        time.sleep(0.5)
    assert progress == {"total": 1, "indexed": 1, "pending": 0, "failed": 0, "percent": 100.0}
    page = client.get("/collection/").content.decode()
    assert "1 indexed, 0 waiting, 0 failed, of 1" in page
    version = get_active_version()
    hits = get_store(version).search(np.ones((1, version.dim), np.float32), k=5)[0]
    assert [hit.image_id for hit in hits] == [image.pk]
    assert hits[0].landmark_id == image.landmark_id
