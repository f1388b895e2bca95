"""Fault tests on the real services: a worker killed mid-batch, a Milvus restart and a Redis restart during
indexing. After each, with no manual step, every image is indexed exactly once (catalogue indexed = Milvus
rows = images) and has its local features, within a bounded time."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from retrieval_core.datasets.synthetic import write_collection
from tests.faults.conftest import FaultStack, wait_until
from webapp.catalog.models import Image
from webapp.catalog.services import import_collection
from webapp.embeddings.models import EmbeddingModelVersion
from webapp.reranking.local_features import sift_store

pytestmark = [pytest.mark.services, pytest.mark.django_db(transaction=True)]
# 6 indexing batches of INDEX_TASK_BATCH=8 (tests/environment.py). The fault strikes as soon as the first
# batch is indexed (seen within FIRST_BATCH_POLL_S), so even an idle machine has batches left to lose.
# Recovery includes indexing everything after the fault, which on 2 busy cores takes most of the bound:
# a Redis-restart run under a load average of 16 spent ~200 s indexing 96 images
# (13 s a batch); 48 images keep that under half the bound. (The Redis test's flakiness itself was a
# feature batch failing on its progress report while Redis was away, leaving a stored file unrecorded,
# which the reconciler did not look for: both fixed, workers/tasks/progress.py, webapp/operations.)
IMAGES = 48
FIRST_BATCH_POLL_S = 0.25
RECOVERY_S = 240  # bound on the whole recovery (typically well under a minute)


def _import(tmp_path: Path) -> None:
    write_collection(tmp_path / "collection", n_landmarks=4, views_per_landmark=IMAGES // 4, seed=5)
    report = import_collection(tmp_path / "collection")
    assert report.created == IMAGES


def _indexed() -> int:
    return Image.objects.filter(status=Image.Status.INDEXED).count()


def _milvus_rows(stack: FaultStack) -> tuple[int, str]:
    """Rows in the active collection, counted by a fresh process (a client of this one may keep a channel
    that the restarted server refuses), and why not (-1) while there is none or the server is away."""
    version = EmbeddingModelVersion.objects.filter(is_active=True).first()
    if version is None:
        return -1, "no active model version"
    script = (
        "import sys; from pymilvus import MilvusClient; c = MilvusClient(uri=sys.argv[1]); n = sys.argv[2]; "
        "print(c.query(n, filter='', output_fields=['count(*)'], consistency_level='Strong')[0]['count(*)']"
        " if c.has_collection(n) else -1)"
    )
    try:
        result = subprocess.run(
            [sys.executable, "-c", script, stack.milvus_uri, version.collection_name],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        return int(result.stdout.strip().splitlines()[-1]), ""
    except subprocess.TimeoutExpired:
        return -1, "counting timed out"
    except (ValueError, IndexError):
        return -1, f"counting failed: {result.stdout[-300:]} {result.stderr[-600:]}"


def _still_missing(stack: FaultStack) -> str:
    """What recovery still lacks, in words; empty once every image is indexed once with its features."""
    store = sift_store()
    images = list(Image.objects.values_list("pk", "status", "local_features_at"))
    if len(images) != IMAGES:
        return f"{len(images)} images in the catalogue"
    not_indexed = sum(status != Image.Status.INDEXED for _, status, _ in images)
    no_features = sum(at is None or not store.has(pk) for pk, _, at in images)
    if not_indexed or no_features:
        return f"{not_indexed} not indexed, {no_features} without local features"
    rows, why = _milvus_rows(stack)  # checked last: it starts a process
    return "" if rows == IMAGES else f"Milvus holds {rows} rows, not {IMAGES} {why}".strip()


def _wait_for_a_first_batch(stack: FaultStack) -> None:
    wait_until(lambda: _indexed() >= 1, 180, "a first indexed batch", stack, poll_s=FIRST_BATCH_POLL_S)


def _assert_exactly_once(stack: FaultStack) -> None:
    last = [""]

    def recovered() -> bool:
        last[0] = _still_missing(stack)
        return not last[0]

    wait_until(recovered, RECOVERY_S, "full recovery", stack, describe=lambda: last[0])
    assert Image.objects.count() == _indexed() == _milvus_rows(stack)[0] == IMAGES
    assert not Image.objects.filter(status=Image.Status.FAILED).exists()


def test_a_worker_killed_mid_batch_loses_nothing(stack: FaultStack, tmp_path: Path) -> None:
    _import(tmp_path)
    _wait_for_a_first_batch(stack)
    stack.kill_worker()  # kill -9, in the middle of the import
    assert _indexed() < IMAGES, "the import finished before the kill: nothing was tested"
    stack.start_worker()
    _assert_exactly_once(stack)


def test_a_milvus_restart_during_indexing_loses_nothing(stack: FaultStack, tmp_path: Path) -> None:
    _import(tmp_path)
    _wait_for_a_first_batch(stack)
    assert stack.milvus is not None
    stack.milvus.kill()  # no clean shutdown: unflushed rows may be lost
    stack.milvus.wait()
    stack.start_milvus()
    _assert_exactly_once(stack)


def test_a_redis_restart_during_indexing_loses_nothing(stack: FaultStack, tmp_path: Path) -> None:
    _import(tmp_path)
    _wait_for_a_first_batch(stack)
    assert stack.redis is not None
    stack.redis.terminate()  # the queued tasks are in its append-only file
    stack.redis.wait()
    assert _indexed() < IMAGES, "the import finished before the restart: nothing was tested"
    stack.start_redis()
    _assert_exactly_once(stack)
