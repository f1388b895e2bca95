"""The reconciler on real Redis (its lock) and Milvus (the vectors it compares): what it finds, what it
sends again (captured at commit, not run: no worker here), and that a second run re-sends nothing."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import numpy as np
import pytest
from django.core.management import call_command
from django.test import Client
from django.utils import timezone
from redis import Redis

from retrieval_core.datasets.synthetic import make_scene, render_view
from tests.conftest import LiveServices, encode_jpeg
from webapp import task_names
from webapp.catalog.models import Image
from webapp.catalog.services import register_image
from webapp.embeddings.models import EmbeddingModelVersion
from webapp.embeddings.services import collection_store
from webapp.operations import services
from webapp.operations.models import ReconcileRun
from webapp.reranking.local_features import extract_local_features, sift_store

pytestmark = [pytest.mark.services, pytest.mark.django_db]
DIM = 8


def _photo(seed: int) -> bytes:
    view, _ = render_view(make_scene(seed, (120, 160)), np.random.default_rng(seed), out_size=(120, 160))
    return encode_jpeg(view)


@pytest.fixture
def version(
    live_services: LiveServices, empty_vector_store: None, settings, tmp_path
) -> EmbeddingModelVersion:
    settings.FEATURES_ROOT = tmp_path / "features"  # the SIFT files these tests write (and break) stay here
    return EmbeddingModelVersion.objects.create(
        name="reconcile-test", backbone="b", weights="w", image_size=64, dim=DIM,
        collection_name="test_reconcile", is_active=True,
    )  # fmt: skip


def _image(seed: int, status: str, *, age_s: int = 3600, indexed: bool = False) -> Image:
    image = register_image(_photo(seed), original_name=f"{seed}.jpg", schedule=False).image
    past = timezone.now() - timedelta(seconds=age_s)
    Image.objects.filter(pk=image.pk).update(
        status=status, created_at=past, indexed_at=past if indexed else None
    )
    return Image.objects.get(pk=image.pk)


def _sent(callbacks: list) -> dict[str, list[tuple[list[int], dict]]]:
    sent: dict[str, list[tuple[list[int], dict]]] = {}
    for callback in callbacks:
        sent.setdefault(callback.name, []).append((callback.args[0], callback.kwargs))
    return sent


def _ids(sent: dict, name: str) -> set[int]:
    return {pk for ids, _ in sent.get(name, []) for pk in ids}


def test_lost_work_is_found_resent_once_and_milvus_brought_in_step(
    version: EmbeddingModelVersion, django_capture_on_commit_callbacks: Callable
) -> None:
    stuck = _image(1, Image.Status.PENDING)  # its task was lost
    fresh = _image(2, Image.Status.PENDING, age_s=1)  # probably still in the queue: left alone
    good = _image(3, Image.Status.INDEXED, indexed=True)
    lost_vector = _image(4, Image.Status.INDEXED, indexed=True)  # Milvus lost it
    corrupt = _image(5, Image.Status.INDEXED, indexed=True)
    failed = _image(6, Image.Status.FAILED)
    gave_up = _image(7, Image.Status.FAILED)
    Image.objects.filter(pk=gave_up.pk).update(index_error="vector store unavailable: connection refused")
    extract_local_features([good.pk, lost_vector.pk, corrupt.pk])
    path = sift_store().path_for(corrupt.pk)
    path.write_bytes(path.read_bytes()[:100])  # truncated
    store = collection_store(version.collection_name, DIM)
    vectors = np.eye(DIM, dtype=np.float32)[:4]
    store.upsert([good.pk, corrupt.pk, failed.pk, 987654], vectors, [None] * 4)
    store.flush()

    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        outcome = services.reconcile(stale_seconds=600)
    run = outcome.run
    assert run is not None and not outcome.skipped and run.error == ""
    sent = _sent(callbacks)
    assert _ids(sent, task_names.INDEX_IMAGES) == {stuck.pk, lost_vector.pk, gave_up.pk}
    assert fresh.pk not in _ids(sent, task_names.EXTRACT_LOCAL_FEATURES)
    extract = {pk: kwargs for ids, kwargs in sent[task_names.EXTRACT_LOCAL_FEATURES] for pk in ids}
    assert set(extract) == {stuck.pk, gave_up.pk, corrupt.pk}
    assert extract[corrupt.pk] == {"force": True} and extract[stuck.pk] == {}
    assert (run.requeued_pending, run.missing_local_features, run.unreadable_local_features) == (2, 0, 1)
    assert (run.catalogue_indexed, run.vector_rows, run.missing_vectors, run.orphan_vectors) == (3, 4, 1, 2)
    assert run.stale_analysis == 5  # every searchable image older than the stale period, never analysed
    assert run.drift == 2 + 1 + 1 + 2 + 5
    assert Image.objects.get(pk=lost_vector.pk).status == Image.Status.PENDING  # no longer claims searchable
    assert Image.objects.get(pk=gave_up.pk).status == Image.Status.PENDING
    assert Image.objects.get(pk=failed.pk).status == Image.Status.FAILED  # unreadable: stays failed
    assert set(services.milvus_ids(version.collection_name)) == {good.pk, corrupt.pk}

    # Right after, nothing is sent twice: the work just re-sent is given a stale period to finish.
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        again = services.reconcile(stale_seconds=600).run
    assert again is not None and _sent(callbacks) == {} and again.orphan_vectors == 0
    # A stale period later, what is still undone is sent again.
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        later = services.reconcile(stale_seconds=600, now=timezone.now() + timedelta(seconds=700)).run
    assert stuck.pk in _ids(_sent(callbacks), task_names.INDEX_IMAGES) and later is not None


def test_a_stored_file_whose_extraction_was_never_recorded_is_extracted_again(
    version: EmbeddingModelVersion, django_capture_on_commit_callbacks: Callable
) -> None:
    """The extraction stored the file, then died before recording it (Redis went away mid-batch)."""
    image = _image(8, Image.Status.INDEXED, indexed=True)
    extract_local_features([image.pk])
    Image.objects.filter(pk=image.pk).update(local_features_at=None)
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        run = services.reconcile(stale_seconds=600).run
    assert run is not None and run.missing_local_features == 1
    assert [kwargs for _, kwargs in _sent(callbacks)[task_names.EXTRACT_LOCAL_FEATURES]] == [{}]  # not forced
    assert _ids(_sent(callbacks), task_names.EXTRACT_LOCAL_FEATURES) == {image.pk}
    # What the worker then runs: an unrecorded file may belong to a reused id, so it is extracted again.
    assert extract_local_features([image.pk])["extracted"] == 1
    assert Image.objects.get(pk=image.pk).local_features_at is not None


def test_one_run_at_a_time(version: EmbeddingModelVersion, live_services: LiveServices) -> None:
    lock = Redis.from_url(live_services.redis_url).lock(services.LOCK_NAME, timeout=30)
    assert lock.acquire(blocking=False)
    try:
        outcome = services.reconcile()
        assert outcome.skipped and outcome.run is None and not ReconcileRun.objects.exists()
    finally:
        lock.release()
    assert services.reconcile().run is not None


def test_the_command_and_the_collection_page_show_the_drift(
    version: EmbeddingModelVersion, capsys, client: Client, django_capture_on_commit_callbacks: Callable
) -> None:
    assert "Self-check" not in client.get("/collection/").content.decode()  # before the first run
    _image(1, Image.Status.PENDING)
    with django_capture_on_commit_callbacks(execute=False):
        call_command("reconcile")
    out = capsys.readouterr().out
    assert "pending images re-sent" in out and out.split("pending images re-sent")[1].split()[0] == "1"
    assert "drift" in out
    page = client.get("/collection/").content.decode()
    assert "Self-check" in page and "1 stuck waiting" in page
    with django_capture_on_commit_callbacks(execute=False):
        call_command("reconcile")
    assert "all in step" in client.get("/collection/").content.decode()
