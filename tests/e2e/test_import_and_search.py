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
from webapp.reranking.local_features import sift_store

pytestmark = [pytest.mark.services, pytest.mark.django_db(transaction=True)]


def test_new_view_of_a_landmark_retrieves_it_first(
    tmp_path: Path, celery_worker_process: object, empty_vector_store: None, client: Client
) -> None:
    queries = write_query_split(tmp_path, n_landmarks=4, views=6, seed=11)
    call_command("import_images", str(tmp_path / "collection"), "--timeout", "600", verbosity=0)

    progress = indexing_progress()
    # The command returns once embeddings and re-ranking features (a separate cpu task) are stored.
    assert (progress.total, progress.indexed, progress.failed, progress.local_features) == (20, 20, 0, 20)
    assert get_store(get_active_version()).count() == 20

    # Importing again registers nothing twice and indexes nothing twice.
    call_command("import_images", str(tmp_path / "collection"), "--timeout", "60", verbosity=0)
    assert Image.objects.count() == 20
    assert get_store(get_active_version()).count() == 20

    # Re-ranking never recomputes index features at query time: the worker stored them.
    store = sift_store()
    assert all(store.has(pk) for pk in Image.objects.values_list("pk", flat=True))

    for landmark, query in queries.items():
        with query.open("rb") as photo:
            response = client.post("/api/search/", {"image": photo})
        assert response.status_code == 200, response.content
        payload = response.json()
        results = payload["results"]
        assert payload["rerank"]["method"] == "sift"
        assert len(results) == 10
        assert results[0]["landmark"]["name"] == landmark
        scores = [hit["score"] for hit in results]
        assert scores == sorted(scores, reverse=True)
        assert {hit["rank"] for hit in results} == set(range(1, 11))
        # Same scene: many verified inliers; other scenes: (almost) none.
        same = [hit for hit in results if hit["landmark"]["name"] == landmark]
        other = [hit for hit in results if hit["landmark"]["name"] != landmark]
        assert min(hit["inliers"] for hit in same) > 30
        assert max(hit["inliers"] for hit in other) < 15
        assert all(hit["local_score"] is not None for hit in results)
        # No photo of this collection has a position: no location, and the reason why.
        assert payload["location"] is None and "no photo positions" in payload["location_reason"]

    # The result page draws the verified matches between the query and the result.
    best = results[0]
    assert f"?query={payload['query']['id']}" in best["page_url"]
    page = client.get(best["page_url"])
    assert b"geometrically verified SIFT matches" in page.content
    drawing = client.get(f"/queries/{payload['query']['id']}/matches/{best['image_id']}.png")
    assert drawing.status_code == 200 and drawing["Content-Type"] == "image/png"
    assert client.get(f"/queries/{payload['query']['id']}/matches/999999.png").status_code == 404


def test_missing_local_features_degrade_to_the_global_score(
    tmp_path: Path,
    celery_worker_process: object,
    empty_vector_store: None,
    client: Client,
    caplog: pytest.LogCaptureFixture,
) -> None:
    queries = write_query_split(tmp_path, n_landmarks=2, views=4, seed=21)
    call_command("import_images", str(tmp_path / "collection"), "--timeout", "300", verbosity=0)
    assert indexing_progress().local_features == Image.objects.count()
    store = sift_store()
    removed = Image.objects.order_by("pk").first()
    assert store.delete(removed.pk)

    with next(iter(queries.values())).open("rb") as photo:
        response = client.post("/api/search/", {"image": photo})
    assert response.status_code == 200
    results = {hit["image_id"]: hit for hit in response.json()["results"]}
    assert results[removed.pk]["local_score"] is None
    assert results[removed.pk]["inliers"] is None
    assert any("no local features" in record.getMessage() for record in caplog.records)


def test_photos_uploaded_in_the_collection_page_get_indexed_in_the_background(
    uploader_client: Client, scene_photo: bytes, celery_worker_process: object, empty_vector_store: None
) -> None:
    client = uploader_client
    photo = io.BytesIO(scene_photo)
    photo.name = "new.jpg"
    response = client.post("/collection/", {"photos": [photo], "landmark": "Uploaded place"})
    assert response.status_code == 302
    image = Image.objects.get()
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        progress = client.get("/api/collection/progress/", {"ids": str(image.pk)}).json()
        if progress["pending"] == 0 and progress["local_features"] == 1:
            break
        time.sleep(0.5)
    assert progress == {
        "total": 1,
        "indexed": 1,
        "pending": 0,
        "failed": 0,
        "local_features": 1,
        "percent": 100.0,
    }
    page = client.get("/collection/").content.decode()
    assert "1 indexed, 0 waiting, 0 failed, of 1" in page
    version = get_active_version()
    hits = get_store(version).search(np.ones((1, version.dim), np.float32), k=5)[0]
    assert [hit.image_id for hit in hits] == [image.pk]
    assert hits[0].landmark_id == image.landmark_id


def test_codebook_tuning_and_every_rerank_method(
    tmp_path: Path, celery_worker_process: object, empty_vector_store: None, client: Client
) -> None:
    from webapp.reranking.local_features import clear_caches, vlad_store
    from webapp.reranking.models import FusionSetting, VladCodebook

    clear_caches()
    queries = write_query_split(tmp_path, n_landmarks=3, views=5, seed=31)
    call_command("import_images", str(tmp_path / "collection"), "--timeout", "300", verbosity=0)
    assert indexing_progress().local_features == Image.objects.count()
    call_command("build_local_features", "--vlad", "8", "--vlad-whiten", "6", verbosity=0)
    codebook = VladCodebook.objects.get(is_active=True)
    assert (codebook.clusters, codebook.whitening_dim, codebook.vector_dim) == (8, 6, 6)
    stored = vlad_store(codebook).get_vectors(list(Image.objects.values_list("pk", flat=True)))
    assert len(stored) == 12 and {v.shape for v in stored.values()} == {(6,)}

    out = io.StringIO()
    call_command("tune_fusion", "--method", "sift", stdout=out)
    setting = FusionSetting.objects.get(method="sift")
    assert 0.0 <= setting.weight_global <= 1.0 and len(setting.table) == 21
    assert setting.validation_queries == 6  # 2 per landmark, none of them a reported query
    assert "← chosen" in out.getvalue()

    landmark, query = next(iter(queries.items()))
    for method in ("sift", "vlad", "patches", "none"):
        with query.open("rb") as photo:
            response = client.post("/api/search/", {"image": photo, "rerank": method})
        assert response.status_code == 200, response.content
        payload = response.json()
        assert payload["rerank"]["method"] == method
        assert payload["results"][0]["landmark"]["name"] == landmark
        local_scores = [hit["local_score"] for hit in payload["results"]]
        if method == "none":
            assert local_scores == [None] * len(local_scores)
        else:
            assert all(score is not None for score in local_scores), method
    assert payload["rerank"]["weight_global"] == 1.0
    with query.open("rb") as photo:
        sift = client.post("/api/search/", {"image": photo}).json()
    assert sift["rerank"]["weight_global"] == pytest.approx(setting.weight_global)
    with query.open("rb") as photo:
        assert client.post("/api/search/", {"image": photo, "rerank": "magic"}).status_code == 400
