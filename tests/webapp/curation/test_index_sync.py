"""Index curation reaches search at once, through the real worker, Milvus and search API."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from django.core.management import call_command
from django.test import Client

from retrieval_core.datasets.synthetic import write_collection
from webapp.catalog.models import Image, Landmark
from webapp.catalog.services import import_collection
from webapp.curation.models import CurationAction
from webapp.embeddings.services import get_active_version, get_store

pytestmark = [pytest.mark.services, pytest.mark.django_db(transaction=True)]


def _search_ids(client: Client, path: Path) -> list[int]:
    with path.open("rb") as photo:
        response = client.post("/api/search/", {"image": photo, "k": 5})
    assert response.status_code == 200, response.content
    return [hit["image_id"] for hit in response.json()["results"]]


def _wait_indexed(image: Image, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        image.refresh_from_db()
        if image.status == Image.Status.INDEXED:
            return
        time.sleep(0.5)
    raise AssertionError(f"image {image.pk} still {image.status} after {timeout}s")


def test_removal_relabel_and_undo_reach_the_vector_store(
    tmp_path: Path, celery_worker_process: object, empty_vector_store: None, curator_client: Client
) -> None:
    root = tmp_path / "collection"
    write_collection(root, n_landmarks=3, views_per_landmark=3, seed=5)
    call_command("import_images", str(root), "--timeout", "600", verbosity=0)
    removed = Image.objects.get(source="landmark_000/view_000.jpg")
    moved = Image.objects.get(source="landmark_001/view_001.jpg")
    target = Landmark.objects.get(name="landmark_002")
    store = get_store(get_active_version())
    assert _search_ids(curator_client, root / removed.source)[0] == removed.pk

    response = curator_client.post("/dataset/curate/", {"action": "remove_from_index", "image": removed.pk})
    assert response.status_code == 302
    assert removed.pk not in _search_ids(curator_client, root / removed.source)  # at once, no re-indexing
    assert store.get_vectors([removed.pk]) == {}
    removed.refresh_from_db()
    assert removed.status == Image.Status.EXCLUDED
    assert removed.pk not in import_collection(root).scheduled_image_ids  # a re-import leaves it out

    response = curator_client.post(
        "/dataset/curate/", {"action": "relabel", "image": moved.pk, "landmark_name": target.name}
    )
    assert response.status_code == 302
    vector = store.get_vectors([moved.pk])[moved.pk]
    hit = store.search(vector[None], k=1, landmark_id=target.pk)[0][0]
    assert (hit.image_id, hit.landmark_id) == (moved.pk, target.pk)  # same vector, new landmark id

    removal = CurationAction.objects.get(kind="remove_from_index")
    assert curator_client.post(f"/dataset/actions/{removal.pk}/undo/").status_code == 302
    _wait_indexed(removed)
    assert _search_ids(curator_client, root / removed.source)[0] == removed.pk
