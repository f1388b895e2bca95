"""The reconciler: brings the catalogue, the feature files, Milvus and the analysis back into step.

Work can be lost between the database and the workers: a worker killed mid-batch (its task waits out the
broker's visibility timeout, or is gone with a Redis that kept nothing), a broker down when an upload
committed, a Milvus server that lost rows, a feature file deleted or truncated. ``reconcile`` finds each
kind of loss and hands the work out again through the usual on-commit dispatch:

- images still ``pending`` ``RECONCILE_STALE_SECONDS`` after they were registered (or last re-sent): their
  indexing (and local features) again;
- searchable images whose SIFT file is missing, or unreadable (re-extracted with ``force``);
- images ``indexed`` in the catalogue whose vector is not in the active collection: back to ``pending`` and
  indexed again; vectors of images that do not exist or are not searchable (failed, removed): deleted;
- images never analysed (quality, or neighbours once indexed): analysed.

Every step is idempotent (indexing upserts by image id, features are overwritten atomically, analysis
overwrites itself), each image's work is re-sent at most once per stale period (`Resend`), and one run at a
time holds a Redis lock, so any number of workers and beats may call it. Each run is recorded as a
`ReconcileRun` with the drift it found: the collection page and ``manage.py reconcile`` show it.
"""

from __future__ import annotations

import logging
import zipfile
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np
from django.conf import settings
from django.db import transaction
from django.db.models import Q, QuerySet
from django.utils import timezone
from pymilvus import MilvusClient
from pymilvus.exceptions import MilvusException
from redis import Redis
from redis.exceptions import RedisError

from retrieval_core.features.compact import is_known_meta
from retrieval_core.storage import LocalBlobStore
from webapp import task_names
from webapp.catalog.models import Image
from webapp.catalog.services import schedule_analysis, schedule_indexing
from webapp.dispatch import send_batches_on_commit, send_on_commit
from webapp.embeddings.models import EmbeddingModelVersion
from webapp.embeddings.services import collection_store
from webapp.metrics import MILVUS_ERRORS, RECONCILE_RESENT
from webapp.operations.models import ReconcileRun, Resend
from webapp.reranking.local_features import sift_store

logger = logging.getLogger(__name__)

LOCK_NAME = "landmarks:reconcile"
SEARCHABLE = (Image.Status.PENDING, Image.Status.INDEXED)
# How workers.tasks.gpu.index_images records images it gave up on because Milvus was unreachable.
TRANSIENT_FAILURE = "vector store unavailable"
_MILVUS_PAGE = 4096
# The `ReconcileRun` fields that count drift (re-sent work, deleted vectors), one metric label each.
DRIFT_KINDS = (
    "requeued_pending",
    "missing_local_features",
    "unreadable_local_features",
    "missing_vectors",
    "orphan_vectors",
    "stale_analysis",
)


@dataclass(frozen=True)
class ReconcileOutcome:
    """A finished run, or ``skipped`` when another run held the lock."""

    run: ReconcileRun | None
    skipped: bool = False


def reconcile(*, stale_seconds: int | None = None, now: datetime | None = None) -> ReconcileOutcome:
    """One reconcile pass under the Redis lock; another pass already running makes this one a no-op."""
    stale = settings.RECONCILE_STALE_SECONDS if stale_seconds is None else stale_seconds
    lock = Redis.from_url(settings.REDIS_URL).lock(
        LOCK_NAME, timeout=max(60, settings.RECONCILE_INTERVAL_SECONDS * 4), blocking=False
    )
    if not lock.acquire():
        logger.info("another reconcile run holds the lock; skipping")
        return ReconcileOutcome(None, skipped=True)
    try:
        return ReconcileOutcome(_reconcile(timedelta(seconds=stale), now or timezone.now()))
    finally:
        try:
            lock.release()
        except RedisError:  # expired meanwhile: the next run simply takes it
            logger.warning("reconcile lock had expired before the run finished")


def _reconcile(stale: timedelta, now: datetime) -> ReconcileRun:
    run = ReconcileRun.objects.create()
    cutoff = now - stale
    errors: list[str] = []
    run.requeued_pending = _resend_stale_pending(cutoff, now)
    run.missing_local_features, run.unreadable_local_features = _resend_local_features(cutoff, now)
    try:
        _reconcile_vectors(run, cutoff, now)
    except (MilvusException, ConnectionError, TimeoutError) as error:
        MILVUS_ERRORS.labels("reconcile").inc()
        logger.warning("could not compare the catalogue with Milvus: %s", error)
        errors.append(f"Milvus: {error}")
    run.stale_analysis = _resend_analysis(cutoff, now)
    run.error = "; ".join(errors)
    run.finished_at = timezone.now()
    run.save()
    for kind in DRIFT_KINDS:
        RECONCILE_RESENT.labels(kind).inc(getattr(run, kind))
    if run.drift:
        logger.warning(
            "reconcile: %d pending re-sent, %d/%d missing/unreadable local features, %d missing, %d orphan "
            "vectors, %d analyses re-sent",
            run.requeued_pending,
            run.missing_local_features,
            run.unreadable_local_features,
            run.missing_vectors,
            run.orphan_vectors,
            run.stale_analysis,
        )
    return run


def _not_resent_since(images: QuerySet[Image], kind: str, cutoff: datetime) -> list[int]:
    recent = Resend.objects.filter(kind=kind, sent_at__gte=cutoff).values("image_id")
    return list(images.exclude(pk__in=recent).order_by("pk").values_list("pk", flat=True))


def _mark_resent(image_ids: Sequence[int], kind: str, now: datetime) -> None:
    Resend.objects.filter(image_id__in=image_ids, kind=kind).delete()
    Resend.objects.bulk_create([Resend(image_id=pk, kind=kind, sent_at=now) for pk in image_ids])


def _resend_stale_pending(cutoff: datetime, now: datetime) -> int:
    """Pending images older than the cutoff, and images that failed only because Milvus was unreachable
    (after the task's retries): their indexing again."""
    transient = Image.objects.filter(status=Image.Status.FAILED, index_error__startswith=TRANSIENT_FAILURE)
    transient = transient.filter(Q(indexed_at__isnull=True) | Q(indexed_at__lt=cutoff))
    stuck = Image.objects.filter(Q(status=Image.Status.PENDING, created_at__lt=cutoff) | Q(pk__in=transient))
    ids = _not_resent_since(stuck, Resend.Kind.INDEX, cutoff)
    if ids:
        with transaction.atomic():
            Image.objects.filter(pk__in=ids, status=Image.Status.FAILED).update(
                status=Image.Status.PENDING, index_error=""
            )
            _mark_resent(ids, Resend.Kind.INDEX, now)
            schedule_indexing(ids)  # embedding + local features, after commit
            _mark_resent(ids, Resend.Kind.LOCAL_FEATURES, now)
    return len(ids)


def _unreadable(store_ids: Iterable[int]) -> list[int]:
    """The ids whose stored file is not a readable feature file (truncated, corrupt, vanished).

    Cheap enough for every run: opening the archive reads its directory (at the end, so a truncated file
    fails) and the small ``meta`` array, not the descriptors."""
    store = sift_store()
    if not isinstance(store.blobs, LocalBlobStore):
        return []  # an object store publishes whole objects (PutObject): there are no truncated files to find
    bad = []
    for pk in store_ids:
        try:
            with np.load(store.path_for(pk), allow_pickle=False) as data:
                if set(data.files) != {"meta", "geometry", "descriptors"} or not is_known_meta(data["meta"]):
                    bad.append(pk)
        except (OSError, ValueError, KeyError, zipfile.BadZipFile, EOFError):
            bad.append(pk)
    return bad


def _resend_local_features(cutoff: datetime, now: datetime) -> tuple[int, int]:
    """Searchable images without a readable SIFT file (missing, or truncated / corrupt), or whose stored file
    was never recorded (the extraction died between storing it and recording it, e.g. when Redis went away
    mid-batch): extracted again; a re-run keeps a readable stored file and records it."""
    store = sift_store()
    stored = {int(name) for name in store.ids() if name.isdigit()}
    searchable = Image.objects.filter(status__in=SEARCHABLE)
    old = searchable.filter(Q(created_at__lt=cutoff) | Q(local_features_at__lt=cutoff))
    old_ids = set(old.values_list("pk", flat=True))
    unrecorded = set(old.filter(local_features_at__isnull=True).values_list("pk", flat=True)) & stored
    missing = _not_resent_since(
        Image.objects.filter(pk__in=(old_ids - stored) | unrecorded), Resend.Kind.LOCAL_FEATURES, cutoff
    )
    unreadable = _not_resent_since(
        Image.objects.filter(pk__in=_unreadable(sorted(old_ids & stored))), Resend.Kind.LOCAL_FEATURES, cutoff
    )
    if missing or unreadable:
        with transaction.atomic():
            _mark_resent(missing + unreadable, Resend.Kind.LOCAL_FEATURES, now)
            send_batches_on_commit(task_names.EXTRACT_LOCAL_FEATURES, missing, settings.INDEX_TASK_BATCH)
            for start in range(0, len(unreadable), settings.INDEX_TASK_BATCH):  # force: replace the bad file
                batch = unreadable[start : start + settings.INDEX_TASK_BATCH]
                send_on_commit(task_names.EXTRACT_LOCAL_FEATURES, batch, force=True)
    return len(missing), len(unreadable)


def milvus_ids(collection: str) -> set[int]:
    """Every primary key of a Milvus collection (paged, so any size). A client per call, closed after: an
    idle cached one keeps pinging the server, which then drops the process's shared channel."""
    client = MilvusClient(uri=settings.MILVUS_URI, token=settings.MILVUS_TOKEN, timeout=30)
    try:
        if not client.has_collection(collection):
            return set()
        client.load_collection(collection)  # a restarted Milvus Lite server holds every collection released
        iterator = client.query_iterator(
            collection,
            batch_size=_MILVUS_PAGE,
            filter="id >= 0 or id < 0",
            output_fields=["id"],
            consistency_level="Strong",
        )
        ids: set[int] = set()
        try:
            while rows := iterator.next():
                ids.update(int(row["id"]) for row in rows)
        finally:
            iterator.close()
        return ids
    finally:
        client.close()


def _reconcile_vectors(run: ReconcileRun, cutoff: datetime, now: datetime) -> None:
    version = EmbeddingModelVersion.objects.filter(is_active=True).first()
    if version is None:  # nothing was ever indexed: nothing to compare
        return
    in_milvus = milvus_ids(version.collection_name)
    statuses = dict(Image.objects.values_list("pk", "status"))
    indexed = {pk for pk, status in statuses.items() if status == Image.Status.INDEXED}
    run.catalogue_indexed, run.vector_rows = len(indexed), len(in_milvus)
    # Vectors of images that are gone, failed or removed; a pending image's vector may be being written.
    orphans = sorted(pk for pk in in_milvus if statuses.get(pk) not in SEARCHABLE)
    if orphans:
        store = collection_store(version.collection_name, version.dim, create=False)
        store.delete(orphans)
        store.flush()
    run.orphan_vectors = len(orphans)
    # Indexed a while ago and still not in Milvus (e.g. a Milvus that lost data): index them again.
    settled = set(
        Image.objects.filter(pk__in=indexed - in_milvus)
        .filter(Q(indexed_at__lt=cutoff) | Q(indexed_at__isnull=True))
        .values_list("pk", flat=True)
    )
    missing = sorted(settled)
    if missing:
        with transaction.atomic():
            Image.objects.filter(pk__in=missing, status=Image.Status.INDEXED).update(
                status=Image.Status.PENDING
            )
            _mark_resent(missing, Resend.Kind.INDEX, now)
            send_batches_on_commit(task_names.INDEX_IMAGES, missing, settings.INDEX_TASK_BATCH)
    run.missing_vectors = len(missing)


def _resend_analysis(cutoff: datetime, now: datetime) -> int:
    """Images whose quality was never analysed, or (indexed) whose neighbours were never analysed."""
    never = Image.objects.filter(created_at__lt=cutoff, status__in=SEARCHABLE).filter(
        Q(analysis__isnull=True)
        | Q(analysis__quality_analysed_at__isnull=True)
        | Q(status=Image.Status.INDEXED, analysis__neighbours_analysed_at__isnull=True, indexed_at__lt=cutoff)
    )
    return _resend(never, Resend.Kind.ANALYSIS, cutoff, now, schedule_analysis)


def _resend(
    images: QuerySet[Image],
    kind: str,
    cutoff: datetime,
    now: datetime,
    schedule: Callable[[Sequence[int]], object],
) -> int:
    """Hand ``images``' work of ``kind`` out again through ``schedule`` (at commit), except those re-sent
    since the cutoff; how many were re-sent."""
    ids = _not_resent_since(images, kind, cutoff)
    if ids:
        with transaction.atomic():
            _mark_resent(ids, kind, now)
            schedule(ids)
    return len(ids)
