"""The dataset analysis: quality per image, near-duplicates and label noise per landmark.

It runs in Celery tasks (``workers.tasks.analysis``): per image for the pixels (grayscale, size, blur) and
exact duplicates, per landmark for what needs the vector store (near-duplicates, label noise), once the
landmark's images are indexed. Re-running overwrites the analysis, never a curator's verdict.

Requests are coalesced: an import queues indexing a batch at a time, and each batch asks for analysis.
`request_analysis` adds the images to one pending set in Redis and queues a single run
(``ANALYSE_PENDING``) unless one is queued already; that run waits until the requests stop for
ANALYSIS_DEBOUNCE_SECONDS and the pending images are indexed, then analyses them all at once. A request
made while it runs queues the next run, so work that arrives meanwhile is analysed once more at the end.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

import numpy as np
from django.conf import settings
from django.db.models import Min, Q, QuerySet
from django.utils import timezone
from redis import Redis

from retrieval_core.imaging import ImageLoadError
from retrieval_core.index.milvus_store import MilvusVectorStore
from webapp import task_names
from webapp.catalog.models import Image
from webapp.curation.models import ImageAnalysis, ImageCuration
from webapp.curation.quality import AnalysisConfig, Neighbour, measure_quality, noise_evidence
from webapp.curation.vectors import stored_vectors
from webapp.dispatch import send_batches_on_commit, send_on_commit
from webapp.embeddings.models import EmbeddingModelVersion
from webapp.embeddings.services import get_store
from webapp.media import MediaUnavailable, photo_bytes

DEFAULT_CONFIG = AnalysisConfig()
QUALITY_BATCH = 64
LANDMARK_BATCH = 16
_SEARCH_BATCH = 64
_QUALITY_FIELDS = [
    "is_grayscale",
    "channel_spread",
    "is_too_small",
    "sharpness",
    "is_blurred",
    "quality_error",
    "exact_duplicate_of",
    "quality_analysed_at",
]
_NEIGHBOUR_FIELDS = [
    "near_duplicate_of",
    "nearest_similarity",
    "neighbour_disagreement",
    "centroid_similarity",
    "noise_score",
    "is_suspected_noise",
    "suggested_landmark",
    "neighbours_analysed_at",
]
Progress = Callable[[int, int], None]


def queue_analysis(image_ids: Sequence[int]) -> dict[str, int]:
    """Queue the quality analysis of the images, and the neighbour analysis of their landmarks.

    Neighbour analysis re-scores every image of a touched landmark: new images change the neighbours and
    the centroid of the old ones.
    """
    ids = sorted({int(i) for i in image_ids})
    keys = _landmark_keys(Image.objects.filter(pk__in=ids))
    send_batches_on_commit(task_names.ANALYSE_IMAGES, ids, QUALITY_BATCH)
    send_batches_on_commit(task_names.ANALYSE_LANDMARKS, keys, LANDMARK_BATCH)
    return {"images": len(ids), "landmarks": len(keys)}


# Redis keys of the coalesced analysis: the image ids waiting for it, the time of the latest request, and
# a flag held while a run is queued (it expires, so a run lost with its worker never blocks later ones).
PENDING_KEY = "curation:analysis:pending"
_REQUESTED_AT_KEY = "curation:analysis:requested-at"
_QUEUED_KEY = "curation:analysis:queued"
_QUEUED_TTL_S = 600
_ID_CHUNK = 500
_INDEX_POLL_S = 5.0  # while its images are being indexed, the run looks again this often


def _redis() -> Redis:
    return Redis.from_url(settings.REDIS_URL)


def request_analysis(image_ids: Sequence[int]) -> dict[str, int]:
    """Add the images to the pending analysis and queue one run of it, unless a run is queued already.

    Returns how many images were requested and whether this call queued the run (``queued`` 1 or 0).
    """
    ids = sorted({int(i) for i in image_ids})
    with _redis() as client, client.pipeline() as pipe:
        if ids:
            pipe.sadd(PENDING_KEY, *ids)
        pipe.set(_REQUESTED_AT_KEY, time.time())
        pipe.set(_QUEUED_KEY, 1, nx=True, ex=_QUEUED_TTL_S)
        first = bool(pipe.execute()[-1])
    if first:
        send = send_on_commit(task_names.ANALYSE_PENDING)
        if send.sent is False:  # the broker is away: let the next request (or the reconciler) try again
            with _redis() as client:
                client.delete(_QUEUED_KEY)
    return {"requested": len(ids), "queued": int(first)}


def pending_analysis_wait() -> float:
    """Seconds the queued run should still wait: the requests have not been quiet for
    ANALYSIS_DEBOUNCE_SECONDS, or some pending images are not indexed yet (0: run now)."""
    with _redis() as client:
        requested_at = float(client.get(_REQUESTED_AT_KEY) or 0.0)
        ids = [int(i) for i in client.smembers(PENDING_KEY)]
        client.expire(_QUEUED_KEY, _QUEUED_TTL_S)  # still queued: keep the flag while it waits
    quiet_for = time.time() - requested_at
    if quiet_for < settings.ANALYSIS_DEBOUNCE_SECONDS:
        return settings.ANALYSIS_DEBOUNCE_SECONDS - quiet_for
    waiting = any(
        Image.objects.filter(pk__in=ids[start : start + _ID_CHUNK], status=Image.Status.PENDING).exists()
        for start in range(0, len(ids), _ID_CHUNK)
    )
    return max(settings.ANALYSIS_DEBOUNCE_SECONDS, _INDEX_POLL_S) if waiting else 0.0


def run_pending_analysis() -> dict[str, int]:
    """Queue the analysis of every pending image (`queue_analysis`), once.

    The queued flag is dropped first, so a request from now on queues the next run; the ids leave the
    pending set only once their analysis is queued (a worker killed meanwhile leaves them for its retry).
    """
    with _redis() as client:
        client.delete(_QUEUED_KEY)
        ids = sorted(int(i) for i in client.smembers(PENDING_KEY))
        if not ids:
            return {"images": 0, "landmarks": 0}
        queued = queue_analysis(ids)
        for start in range(0, len(ids), _ID_CHUNK):
            client.srem(PENDING_KEY, *ids[start : start + _ID_CHUNK])
    return queued


def queue_collection_analysis(landmark_ids: Sequence[int] | None = None) -> dict[str, int]:
    """Re-run the whole analysis for the given landmarks' images, or for the whole collection."""
    images = (
        Image.objects.all() if landmark_ids is None else Image.objects.filter(landmark_id__in=landmark_ids)
    )
    return queue_analysis(list(images.values_list("pk", flat=True)))


def _landmark_keys(images: QuerySet[Image]) -> list[int | None]:
    """Landmark ids of the images, None standing for "unlabelled" (JSON-friendly task arguments)."""
    keys = set(images.values_list("landmark_id", flat=True).distinct())
    return sorted(keys, key=lambda key: -1 if key is None else key)


def _of_landmark(key: int | None) -> Q:
    return Q(landmark__isnull=True) if key is None else Q(landmark_id=key)


def images_waiting_for_index(landmark_keys: Sequence[int | None]) -> int:
    """Images of these landmarks still pending: their neighbours cannot be judged before they are indexed."""
    query = Q(pk__in=[])
    for key in landmark_keys:
        query |= _of_landmark(key)
    return Image.objects.filter(query, status=Image.Status.PENDING).count()


def analyse_quality(
    image_ids: Sequence[int], *, config: AnalysisConfig = DEFAULT_CONFIG, progress: Progress | None = None
) -> dict[str, int]:
    """Grayscale, size, blur and exact duplicates of the images; idempotent (re-running overwrites)."""
    images = list(Image.objects.filter(pk__in=image_ids).order_by("pk"))
    first_with_bytes = dict(
        Image.objects.filter(sha256__in={image.sha256 for image in images})
        .values("sha256")
        .annotate(first=Min("pk"))
        .values_list("sha256", "first")
    )
    now = timezone.now()
    rows = []
    for done, image in enumerate(images, start=1):
        first = first_with_bytes.get(image.sha256)
        row = ImageAnalysis(
            image=image,
            is_too_small=min(image.width, image.height) < config.min_side,
            exact_duplicate_of_id=first if first != image.pk else None,
            quality_analysed_at=now,
        )
        try:
            signals = measure_quality(
                photo_bytes(image.file),
                long_side=config.analysis_long_side,
                max_pixels=settings.IMAGE_MAX_PIXELS,
            )
        except MediaUnavailable:
            raise  # the store, not the photo: no row is written and the reconciler sends the analysis again
        except (ImageLoadError, OSError) as error:
            row.quality_error = str(error)[:2000]
        else:
            row.channel_spread, row.sharpness = signals.channel_spread, signals.sharpness
            row.is_grayscale, row.is_blurred = signals.is_grayscale(config), signals.is_blurred(config)
        rows.append(row)
        if progress is not None:
            progress(done, len(images))
    ImageAnalysis.objects.bulk_create(
        rows, update_conflicts=True, unique_fields=["image"], update_fields=_QUALITY_FIELDS
    )
    return {
        "analysed": len(rows),
        "grayscale": sum(row.is_grayscale for row in rows),
        "duplicates": sum(row.exact_duplicate_of_id is not None for row in rows),
        "unreadable": sum(bool(row.quality_error) for row in rows),
    }


def analyse_neighbours(
    landmark_keys: Sequence[int | None],
    *,
    config: AnalysisConfig = DEFAULT_CONFIG,
    progress: Progress | None = None,
) -> dict[str, int]:
    """Near-duplicates and label-noise scores of the indexed images of these landmarks (None: unlabelled).

    Each image's own stored vector is searched in the collection (k nearest, not all pairs), so the cost
    grows with the landmark, not with the collection.
    """
    version = EmbeddingModelVersion.objects.filter(is_active=True).first()
    if version is None:  # nothing was ever indexed
        return {"analysed": 0, "suspected": 0}
    store = get_store(version)
    analysed = suspected = 0
    for done, key in enumerate(landmark_keys, start=1):
        rows = _landmark_neighbour_rows(store, key, config)
        ImageAnalysis.objects.bulk_create(
            rows, update_conflicts=True, unique_fields=["image"], update_fields=_NEIGHBOUR_FIELDS
        )
        analysed += len(rows)
        suspected += sum(row.is_suspected_noise for row in rows)
        if progress is not None:
            progress(done, len(landmark_keys))
    return {"analysed": analysed, "suspected": suspected}


def _landmark_neighbour_rows(
    store: MilvusVectorStore, key: int | None, config: AnalysisConfig
) -> list[ImageAnalysis]:
    candidates = Image.objects.filter(_of_landmark(key), status=Image.Status.INDEXED).order_by("pk")
    vectors = stored_vectors(store, list(candidates.values_list("pk", flat=True)))
    ids = sorted(vectors)
    if not ids:
        return []
    matrix = np.stack([vectors[i] for i in ids]).astype(np.float64)
    marked_noise = set(
        ImageCuration.objects.filter(image_id__in=ids, is_noise=True).values_list("image_id", flat=True)
    )
    members = [row for image_id, row in zip(ids, matrix, strict=True) if image_id not in marked_noise]
    total = np.sum(members, axis=0) if members else None
    hits = []
    for start in range(0, len(ids), _SEARCH_BATCH):
        hits.extend(store.search(matrix[start : start + _SEARCH_BATCH], k=config.neighbours + 5))
    neighbour_ids = {hit.image_id for per_image in hits for hit in per_image}
    labels = dict(Image.objects.filter(pk__in=neighbour_ids).values_list("pk", "landmark_id"))
    voiceless = set(  # a curator said these are noise: they do not vote on anyone's label
        ImageCuration.objects.filter(image_id__in=neighbour_ids, is_noise=True).values_list(
            "image_id", flat=True
        )
    )
    now = timezone.now()
    rows = []
    for image_id, vector, per_image in zip(ids, matrix, hits, strict=True):
        neighbours = [
            Neighbour(hit.image_id, hit.score, None if hit.image_id in voiceless else labels[hit.image_id])
            for hit in per_image
            if hit.image_id in labels  # deleted from the catalogue, not yet from Milvus
        ]
        own = image_id in marked_noise
        evidence = noise_evidence(
            image_id,
            key,
            vector,
            neighbours,
            landmark_size=len(members) + own,
            landmark_sum=None if total is None or key is None else (total + vector if own else total),
            config=config,
        )
        score = evidence.noise_score
        rows.append(
            ImageAnalysis(
                image_id=image_id,
                near_duplicate_of_id=evidence.near_duplicate_of,
                nearest_similarity=evidence.nearest_similarity,
                neighbour_disagreement=evidence.disagreement,
                centroid_similarity=evidence.centroid_similarity,
                noise_score=score,
                is_suspected_noise=score is not None and score >= config.suspect_noise_score,
                suggested_landmark_id=evidence.suggested_landmark_id,
                neighbours_analysed_at=now,
            )
        )
    return rows
