"""The active embedding model, its extractor and vector store, and indexing images into it."""

from __future__ import annotations

import dataclasses
import logging
import threading
from collections.abc import Callable, Sequence
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from retrieval_core.features.global_ import GlobalDescriptorExtractor
from retrieval_core.features.store import PatchStore
from retrieval_core.index.milvus_store import AnnIndexParams, MilvusVectorStore, PhotoScalars
from retrieval_core.models.embedding import IMAGENET, EmbeddingConfig
from retrieval_core.search.decode import DecodePolicy, decode
from retrieval_core.training.checkpoint import checkpoint_embedding_config
from webapp import task_names
from webapp.catalog.models import Image, ImageExif
from webapp.dispatch import send_batches_on_commit, send_on_commit
from webapp.embeddings.models import EmbeddingModelVersion
from webapp.media import photo_bytes
from webapp.metrics import IMAGES_INDEX_FAILED, IMAGES_INDEXED, metered_store
from webapp.storage import feature_blobs, is_stored_object, local_file, publish_file

logger = logging.getLogger(__name__)
_lock = threading.Lock()


def configured_embedding() -> EmbeddingConfig:
    return EmbeddingConfig(
        backbone=settings.EMBEDDING_BACKBONE,
        weights=settings.EMBEDDING_WEIGHTS,
        image_size=settings.EMBEDDING_IMAGE_SIZE,
        gem_p=settings.EMBEDDING_GEM_P,
    )


def decode_policy() -> DecodePolicy:
    """How every photo is decoded, for indexing (global and local features) and for queries."""
    return DecodePolicy(settings.DECODE_DRAFT_LONG_SIDE, settings.IMAGE_MAX_PIXELS)


def patch_store(version: EmbeddingModelVersion) -> PatchStore:
    """CNN patches of the version's images, written by `index_images` from the embedding forward pass."""
    return PatchStore(feature_blobs("patches"), f"{version.collection_name}-top{settings.PATCHES_TOP_N}")


def get_active_version() -> EmbeddingModelVersion:
    """The version search uses; on first use, the one the settings describe is created and activated."""
    active = EmbeddingModelVersion.objects.filter(is_active=True).first()
    if active is not None:
        return active
    config = configured_embedding()
    collection = f"{settings.MILVUS_COLLECTION_PREFIX}_{config.collection_name}"
    with transaction.atomic():
        version, _ = EmbeddingModelVersion.objects.get_or_create(
            collection_name=collection,
            defaults={
                "name": config.version_key,
                "backbone": config.backbone,
                "weights": config.weights,
                "image_size": config.image_size,
                "gem_p": config.gem_p,
                "dim": get_extractor(config).dim,
            },
        )
        if not EmbeddingModelVersion.objects.filter(is_active=True).exists():
            EmbeddingModelVersion.objects.filter(pk=version.pk).update(is_active=True)
    return EmbeddingModelVersion.objects.get(is_active=True)


@lru_cache(maxsize=4)
def get_extractor(config: EmbeddingConfig) -> GlobalDescriptorExtractor:
    """One loaded model per process and configuration (loading takes seconds, a query milliseconds).

    Weights published to the bucket (``s3://...``) are loaded from a local copy (`webapp.storage.local_file`:
    kept in STORAGE_CACHE_DIR, else a temporary file), and the extractor's config names that copy; a missing
    or unreachable object raises `webapp.storage.StoredFileUnavailable`. A local path loads as always."""
    if settings.TORCH_THREADS > 0:
        torch.set_num_threads(settings.TORCH_THREADS)
    with _lock:
        if config.weights == IMAGENET or not is_stored_object(config.weights):
            extractor = GlobalDescriptorExtractor.from_config(config)
        else:
            with local_file(config.weights) as path:
                local = dataclasses.replace(config, weights=str(path))
                extractor = GlobalDescriptorExtractor.from_config(local)
    # Which device a process embeds on is decided here (CUDA when present): say so once, in its log.
    logger.info(
        "embedding model %s %s (%d px) loaded on %s",
        config.backbone, config.weights, config.image_size, extractor.device,
    )  # fmt: skip
    return extractor


@lru_cache(maxsize=16)
def _store(uri: str, collection: str, dim: int, index: AnnIndexParams) -> MilvusVectorStore:
    token = settings.MILVUS_TOKEN
    return metered_store(lambda: MilvusVectorStore(uri, collection, dim, index=index, token=token))


def index_params() -> AnnIndexParams:
    """The ANN index new collections get and the search beam/probes (settings MILVUS_INDEX_*)."""
    return AnnIndexParams(
        index_type=settings.MILVUS_INDEX_TYPE,
        m=settings.MILVUS_INDEX_M,
        ef_construction=settings.MILVUS_INDEX_EF_CONSTRUCTION,
        ef_search=settings.MILVUS_INDEX_EF,
        nlist=settings.MILVUS_INDEX_NLIST,
        nprobe=settings.MILVUS_INDEX_NPROBE,
        pq_m=settings.MILVUS_INDEX_PQ_M,
    )


def collection_store(collection: str, dim: int, *, create: bool = True) -> MilvusVectorStore:
    """A client for one Milvus collection (cached per process); ``create`` makes it (again) if missing."""
    store = _store(settings.MILVUS_URI, collection, dim, index_params())
    if create:
        store.ensure_collection()
    return store


def get_store(version: EmbeddingModelVersion) -> MilvusVectorStore:
    """The version's collection, created (or re-created after an operator dropped it) if missing."""
    return collection_store(version.collection_name, version.dim)


def index_images(
    image_ids: Sequence[int],
    *,
    version: EmbeddingModelVersion | None = None,
    progress: Callable[[int, int], None] | None = None,
    update_status: bool = True,
) -> dict[str, int]:
    """Embed the images and upsert them into the version's collection; idempotent.

    Images that cannot be read are marked failed with the reason; the rest are marked indexed only after
    the vectors are flushed, so "indexed" always means "searchable".
    """
    version = version or get_active_version()
    # A curator may remove an image while its batch waits: never put it back in the index.
    images = list(Image.objects.filter(pk__in=image_ids).exclude(status=Image.Status.EXCLUDED).order_by("pk"))
    if not images:
        return {"indexed": 0, "failed": 0}
    extractor = get_extractor(version.config)
    policy = decode_policy()
    # The decoding threads read each photo from the media storage (local or S3) by its name.
    result = extractor.extract_paths(
        [image.file.name for image in images],
        batch_size=settings.EMBEDDING_BATCH_SIZE,
        progress=progress,
        patch_top_n=settings.PATCHES_TOP_N,
        decode=lambda name: decode(photo_bytes(str(name)), policy),
    )
    failed = {failure.index: failure.message for failure in result.failures}
    ok = [int(i) for i in result.indices]
    if ok:
        publish_vectors(version, [images[i].pk for i in ok], result.vectors)
    if result.patches is not None:
        patches = patch_store(version)
        for position, patch_set in zip(ok, result.patches, strict=True):
            patches.save(images[position].pk, patch_set)
    if update_status:  # the status shown to users is that of the active version
        Image.objects.filter(pk__in=[images[i].pk for i in ok]).update(
            status=Image.Status.INDEXED, index_error="", indexed_at=timezone.now()
        )
        mark_failed([images[index].pk for index in failed], list(failed.values()))
    IMAGES_INDEXED.inc(len(ok))
    IMAGES_INDEX_FAILED.inc(len(failed))
    return {"indexed": len(ok), "failed": len(failed)}


def publish_vectors(version: EmbeddingModelVersion, image_ids: Sequence[int], vectors: np.ndarray) -> None:
    """Make ``(N, D)`` vectors of ``image_ids`` searchable, with each image's current label and filter
    fields."""
    store = get_store(version)
    ids = list(image_ids)
    if not ids:
        return
    scalars = photo_scalars(ids)
    written: dict[int, int | None] = {}
    # A curator may relabel an image while it is written: re-read the labels until they stand still.
    for _ in range(3):
        current = dict(Image.objects.filter(pk__in=ids).values_list("pk", "landmark_id"))
        todo = [k for k, pk in enumerate(ids) if pk not in written or written[pk] != current.get(pk)]
        if not todo:
            break
        store.upsert(
            [ids[k] for k in todo],
            vectors[todo],
            [current.get(ids[k]) for k in todo],
            [scalars[ids[k]] for k in todo],
        )
        written.update({ids[k]: current.get(ids[k]) for k in todo})
    store.flush()


def delete_vectors(version: EmbeddingModelVersion, image_ids: Sequence[int]) -> None:
    """Remove images from the version's collection."""
    if image_ids:
        store = get_store(version)
        store.delete(list(image_ids))
        store.flush()


def photo_scalars(image_ids: Sequence[int]) -> dict[int, PhotoScalars]:
    """The filter fields stored next to each vector (EXIF capture time and GPS), by image id; every upsert
    (indexing, relabelling) writes them, since Milvus replaces a row whole."""
    exif = {
        row["image_id"]: row
        for row in ImageExif.objects.filter(image_id__in=image_ids).values(
            "image_id", "taken_at", "latitude", "longitude"
        )
    }
    out = {}
    for pk in image_ids:
        row = exif.get(pk)
        out[pk] = (
            PhotoScalars()
            if row is None
            else PhotoScalars(row["taken_at"], row["latitude"], row["longitude"])
        )
    return out


def rebuild_collection(version: EmbeddingModelVersion | None = None) -> int:
    """Drop and re-create the version's collection with the current schema (filter fields), then queue
    every searchable image for indexing; returns how many were queued. Search answers 503 until the
    first batch is in."""
    version = version or get_active_version()
    collection_store(version.collection_name, version.dim, create=False).drop()
    clear_caches()
    get_store(version)
    searchable = Image.objects.exclude(status__in=[Image.Status.EXCLUDED, Image.Status.FAILED])
    ids = list(searchable.order_by("pk").values_list("pk", flat=True))
    searchable.update(status=Image.Status.PENDING)
    send_batches_on_commit(task_names.INDEX_IMAGES, ids, settings.INDEX_TASK_BATCH)
    return len(ids)


def mark_failed(image_ids: Sequence[int], messages: Sequence[str]) -> None:
    """Record why images could not be indexed, so they stop counting as waiting."""
    for image_id, message in zip(image_ids, messages, strict=True):
        logger.warning("could not index image %s: %s", image_id, message)
        Image.objects.filter(pk=image_id).update(status=Image.Status.FAILED, index_error=message[:2000])


def clear_caches() -> None:
    """Forget cached stores (e.g. after collections were dropped behind this process's back)."""
    _store.cache_clear()


def register_version(
    config: EmbeddingConfig, *, name: str | None = None, weights: str | None = None
) -> EmbeddingModelVersion:
    """Record a model (e.g. a trained checkpoint) as a version with its own, still empty, collection.

    ``weights``: what the version records and other processes load, when it is not ``config.weights`` (the
    local file, from whose content the collection is named): a published checkpoint's reference."""
    collection = f"{settings.MILVUS_COLLECTION_PREFIX}_{config.collection_name}"
    version, _ = EmbeddingModelVersion.objects.get_or_create(
        collection_name=collection,
        defaults={
            "name": name or config.version_key,
            "backbone": config.backbone,
            "weights": weights or config.weights,
            "image_size": config.image_size,
            "gem_p": config.gem_p,
            "dim": get_extractor(config).dim,
            "state": EmbeddingModelVersion.State.NEW,
        },
    )
    return version


def register_checkpoint(path: Path, *, name: str) -> EmbeddingModelVersion:
    """Publish a finished checkpoint written on this machine (a run's ``best.pt``) where every process
    loads model versions from, and register it as a version. Local backend: the file stays where it is
    (on the shared VAR_DIR/FEATURES_ROOT) and the version records its path; s3: it is uploaded as
    ``<STORAGE_PREFIX>/models/<version key>.pt``, named by its content (the key holds a sha256 prefix of the
    file), so a reader's cached copy can never go stale."""
    config = checkpoint_embedding_config(path)
    reference = publish_file(path, "models", f"{config.version_key}.pt")
    return register_version(config, name=name, weights=reference)


def activate_version(version: EmbeddingModelVersion) -> None:
    """Blue/green roll-out: re-index the collection into the version's own collection in the background;
    search keeps using the active version until the new one is complete, then switches."""
    if version.is_active:
        return
    if version.state == EmbeddingModelVersion.State.DROPPED:
        raise ValueError(f"{version} was dropped; register it again to use it")
    version.refuse_if_retired()  # RetiredVersionError is a ValueError: the Models page shows its message
    EmbeddingModelVersion.objects.filter(pk=version.pk).update(state=EmbeddingModelVersion.State.INDEXING)
    send_on_commit(task_names.REINDEX_VERSION, version.pk)


def reindex_version(version_id: int, *, progress: Callable[[int, int], None] | None = None) -> None:
    """Index every searchable image into the version's collection, then make it the active one.

    Images registered meanwhile are picked up before the switch; re-running is harmless (upserts).
    """
    version = EmbeddingModelVersion.objects.get(pk=version_id)
    searchable = Image.objects.exclude(status__in=[Image.Status.EXCLUDED, Image.Status.FAILED])
    done: set[int] = set()
    while True:
        todo = list(searchable.exclude(pk__in=done).order_by("pk").values_list("pk", flat=True))
        if not todo:
            break
        total = len(done) + len(todo)
        for start in range(0, len(todo), settings.INDEX_TASK_BATCH):
            batch = todo[start : start + settings.INDEX_TASK_BATCH]
            index_images(batch, version=version, update_status=False)
            done.update(batch)
            EmbeddingModelVersion.objects.filter(pk=version.pk).update(
                indexed_count=len(done), total_count=total
            )
            if progress is not None:
                progress(len(done), total)
    with transaction.atomic():
        EmbeddingModelVersion.objects.select_for_update().filter(is_active=True).update(is_active=False)
        EmbeddingModelVersion.objects.filter(pk=version.pk).update(
            is_active=True, state=EmbeddingModelVersion.State.INDEXED
        )
    logger.info("version %s is now active (%d images)", version, len(done))


def drop_version(version: EmbeddingModelVersion) -> None:
    """Delete a retired version's Milvus collection (never the active one)."""
    if version.is_active:
        raise ValueError("the active version's collection cannot be dropped; activate another first")
    collection_store(version.collection_name, version.dim, create=False).drop()
    clear_caches()
    EmbeddingModelVersion.objects.filter(pk=version.pk).update(state=EmbeddingModelVersion.State.DROPPED)
