"""Ingestion throughput plumbing: a worker per queue in `make run`, SIFT a batch per task (stored once per
image, kept on a re-run), and dataset analysis coalesced into one run however many batches ask for it."""

from __future__ import annotations

import base64
import json
import shlex
from pathlib import Path

import numpy as np
import pytest
from django.conf import settings as django_settings
from redis import Redis

from retrieval_core.datasets.synthetic import make_scene, render_view
from tests.conftest import LiveServices, encode_jpeg
from webapp import task_names
from webapp.catalog.models import Image
from webapp.catalog.services import register_image
from webapp.curation import analysis
from webapp.reranking import local_features

ROOT = Path(__file__).resolve().parents[2]


def _procfile_workers() -> dict[str, list[str]]:
    """The Procfile's Celery workers: process name -> its command's words (env assignments included)."""
    entries = (line.split(":", 1) for line in (ROOT / "Procfile").read_text().splitlines() if ":" in line)
    commands = {name.strip(): shlex.split(command) for name, command in entries}
    return {name: words for name, words in commands.items() if "worker" in words and "celery" in words}


def test_procfile_starts_one_worker_per_queue_each_with_its_own_threads() -> None:
    workers = _procfile_workers()
    queues = {name: words[words.index("-Q") + 1].split(",") for name, words in workers.items()}
    assert sorted(q for per_worker in queues.values() for q in per_worker) == ["cpu", "gpu"], queues
    assert all(len(per_worker) == 1 for per_worker in queues.values()), queues  # never both in one
    routed = {route["queue"] for route in django_settings.CELERY_TASK_ROUTES.values()}
    assert routed == {"cpu", "gpu"}
    for name, words in workers.items():
        assert words[words.index("-P") + 1] == "solo" and words[words.index("-c") + 1] == "1", name
        assert "-n" in words, f"{name}: two workers on one host need distinct node names"
    by_queue = {per_worker[0]: workers[name] for name, per_worker in queues.items()}
    # Threads split so the two do not fight over the cores: torch for the gpu worker, SIFT for the cpu one.
    assert any(word.startswith("TORCH_THREADS=") for word in by_queue["gpu"])
    assert any(word.startswith("LOCAL_FEATURE_THREADS=") for word in by_queue["cpu"])


def _register_views(count: int, seed: int) -> list[int]:
    scene = make_scene(seed, (240, 320))
    rng = np.random.default_rng(seed)
    return [
        register_image(
            encode_jpeg(render_view(scene, rng, out_size=(240, 320))[0]),
            original_name=f"{n}.jpg",
            source=f"batch{seed}/{n}.jpg",
            schedule=False,
        ).image.pk
        for n in range(count)
    ]


@pytest.mark.services
@pytest.mark.django_db(transaction=True)
def test_a_batch_sift_task_stores_every_image_once_and_a_rerun_keeps_them(
    celery_worker_process: object, settings: object
) -> None:
    from workers.tasks.cpu import extract_local_features

    ids = _register_views(5, seed=31)
    store = local_features.sift_store()
    for pk in ids:  # files of earlier tests' images that had these ids (rolled-back ids are reused)
        store.delete(pk)

    first = extract_local_features.delay(ids).get(timeout=120)  # one task for the whole batch
    assert first == {"extracted": 5, "kept": 0, "failed": 0, "vlad": 0}
    assert sorted(int(i) for i in store.ids() if int(i) in ids) == sorted(ids)
    assert Image.objects.filter(pk__in=ids, local_features_at__isnull=False).count() == 5
    written = {pk: store.path_for(pk).stat().st_mtime_ns for pk in ids}

    again = extract_local_features.delay(ids).get(timeout=120)
    assert again == {"extracted": 0, "kept": 5, "failed": 0, "vlad": 0}
    assert {pk: store.path_for(pk).stat().st_mtime_ns for pk in ids} == written  # not written twice


@pytest.mark.django_db
def test_threaded_batch_extraction_stores_each_image_its_own_features(settings: object) -> None:
    ids = _register_views(4, seed=32) + _register_views(3, seed=33)
    store = local_features.sift_store()

    def extracted_with(threads: int) -> dict[int, np.ndarray]:
        settings.LOCAL_FEATURE_THREADS = threads  # type: ignore[attr-defined]
        counts = local_features.extract_local_features(ids, force=True)
        assert counts["extracted"] == 7 and counts["failed"] == 0
        return {pk: store.load(pk).keypoints for pk in ids}

    threaded, serial = extracted_with(3), extracted_with(1)
    for pk in ids:
        np.testing.assert_array_equal(threaded[pk], serial[pk])
    assert len({threaded[pk].tobytes() for pk in ids}) == 7  # distinct views: a mix-up would show


def _queued(broker: Redis, queue: str) -> list[tuple[str, list[object]]]:
    """(task name, positional args) of the messages waiting in ``queue``, oldest first."""
    messages = [json.loads(raw) for raw in reversed(broker.lrange(queue, 0, -1))]
    return [(m["headers"]["task"], json.loads(base64.b64decode(m["body"]))[0]) for m in messages]


@pytest.fixture
def quiet_redis(isolated_broker: Redis, live_services: LiveServices, settings: object) -> Redis:
    """The isolated broker database, also holding the coalescing keys: nothing consumes either."""
    settings.REDIS_URL = live_services.redis_url.rsplit("/", 1)[0] + "/1"  # type: ignore[attr-defined]
    return isolated_broker


@pytest.mark.services
@pytest.mark.django_db(transaction=True)
def test_analysis_requests_of_many_batches_become_one_run(quiet_redis: Redis, settings: object) -> None:
    isolated_broker = quiet_redis
    settings.ANALYSIS_DEBOUNCE_SECONDS = 0.0  # type: ignore[attr-defined]
    batches = [_register_views(3, seed=40 + k) for k in range(3)]  # still pending: not indexed yet

    requests = [analysis.request_analysis(batch) for batch in batches]
    assert [r["queued"] for r in requests] == [1, 0, 0]
    assert _queued(isolated_broker, "cpu") == [(task_names.ANALYSE_PENDING, [])]
    assert analysis.pending_analysis_wait() > 0  # its images are still being indexed

    everything = sorted(pk for batch in batches for pk in batch)
    Image.objects.filter(pk__in=everything).update(status=Image.Status.INDEXED)
    assert analysis.pending_analysis_wait() == 0
    isolated_broker.delete("cpu")
    assert analysis.run_pending_analysis()["images"] == 9
    fanned_out = _queued(isolated_broker, "cpu")
    quality = [args[0] for name, args in fanned_out if name == task_names.ANALYSE_IMAGES]
    assert sorted(pk for ids in quality for pk in ids) == everything  # each image analysed once
    assert [name for name, _ in fanned_out].count(task_names.ANALYSE_LANDMARKS) == 1
    assert isolated_broker.scard(analysis.PENDING_KEY) == 0
    assert analysis.run_pending_analysis()["images"] == 0  # nothing left: a second run does nothing

    # Work arriving after the run started queues exactly one more run, for that work only.
    isolated_broker.delete("cpu")
    late = _register_views(2, seed=49)
    assert analysis.request_analysis(late)["queued"] == 1
    assert analysis.request_analysis(late)["queued"] == 0
    assert _queued(isolated_broker, "cpu") == [(task_names.ANALYSE_PENDING, [])]
    assert sorted(int(i) for i in isolated_broker.smembers(analysis.PENDING_KEY)) == sorted(late)


@pytest.mark.services
@pytest.mark.django_db(transaction=True)
def test_debounce_waits_while_requests_keep_coming(quiet_redis: Redis, settings: object) -> None:
    settings.ANALYSIS_DEBOUNCE_SECONDS = 60.0  # type: ignore[attr-defined]
    ids = _register_views(1, seed=50)
    Image.objects.filter(pk__in=ids).update(status=Image.Status.INDEXED)
    analysis.request_analysis(ids)
    assert 0 < analysis.pending_analysis_wait() <= 60.0


@pytest.mark.django_db
def test_an_import_queues_indexing_a_batch_at_a_time_as_it_registers(
    tmp_path: Path, settings: object, django_capture_on_commit_callbacks
) -> None:
    from retrieval_core.datasets.synthetic import write_collection
    from webapp.catalog.services import import_collection

    settings.INDEX_TASK_BATCH = 4  # type: ignore[attr-defined]
    write_collection(tmp_path, n_landmarks=2, views_per_landmark=5, seed=61)
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        report = import_collection(tmp_path)
    sent = [(callback.name, callback.args[0]) for callback in callbacks]
    ids = report.scheduled_image_ids
    batches = [ids[0:4], ids[4:8], ids[8:10]]
    per_batch = (task_names.INDEX_IMAGES, task_names.EXTRACT_LOCAL_FEATURES, task_names.ANALYSE_COLLECTION)
    expected = [(name, batch) for batch in batches for name in per_batch]
    assert len(ids) == 10 and sent == expected


@pytest.mark.django_db
def test_an_upload_of_many_photos_is_indexed_in_batches_not_one_task_each(
    settings: object, django_capture_on_commit_callbacks
) -> None:
    from webapp.catalog.services import upload_images

    settings.INDEX_TASK_BATCH = 4  # type: ignore[attr-defined]
    scene = make_scene(71, (240, 320))
    rng = np.random.default_rng(71)
    files = [(f"{n}.jpg", encode_jpeg(render_view(scene, rng, out_size=(240, 320))[0])) for n in range(6)]
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        images, errors = upload_images(files + files[:1])  # the repeated photo is registered once
    ids = sorted({image.pk for image in images})
    assert errors == [] and len(images) == 7 and len(ids) == 6
    indexing = [callback.args[0] for callback in callbacks if callback.name == task_names.INDEX_IMAGES]
    assert indexing == [ids[:4], ids[4:]]
