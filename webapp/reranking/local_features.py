"""Local features per image, extracted at index time, and the stores they live in.

SIFT (RootSIFT, capped keypoints) goes to a versioned on-disk store, VLAD vectors (once a codebook exists)
to their own Milvus collection, CNN patches (from the embedding forward pass, see
`webapp.embeddings.services.index_images`) to a patch store. Images are decoded by the same function as
queries (`retrieval_core.search.decode`), so query and index features see the same pixels.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from functools import lru_cache
from typing import cast

import numpy as np
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import transaction
from django.utils import timezone

from retrieval_core.features.compact import LocalFeatureFormat
from retrieval_core.features.sift import LocalFeatures, SiftConfig
from retrieval_core.features.store import LocalFeatureStore
from retrieval_core.features.vlad import (
    VladEncoder,
    codebook_from_bytes,
    codebook_to_bytes,
    fit_pca_whitening,
    pca_whitening_from_bytes,
    pca_whitening_to_bytes,
    train_codebook,
    vlad,
)
from retrieval_core.imaging import ImageLoadError
from retrieval_core.index.milvus_store import MilvusVectorStore
from retrieval_core.rerank.sift_scorer import VerificationConfig
from retrieval_core.rerank.verification import GeometryMethod
from retrieval_core.search.decode import index_local_features, local_features_key
from retrieval_core.search.served import SERVED
from webapp import task_names
from webapp.catalog.models import Image
from webapp.dispatch import send_batches_on_commit
from webapp.embeddings.services import collection_store, decode_policy
from webapp.media import photo_bytes
from webapp.reranking.models import VladCodebook
from webapp.storage import feature_blobs, put_file, read_file

logger = logging.getLogger(__name__)


def sift_config(*, query: bool = False) -> SiftConfig:
    """Index images keep more keypoints than queries: matching cost is their product."""
    keypoints = settings.SIFT_QUERY_MAX_KEYPOINTS if query else settings.SIFT_MAX_KEYPOINTS
    return dataclasses.replace(
        SERVED.query_sift if query else SERVED.index_sift,
        max_keypoints=keypoints,
        long_side=settings.SIFT_LONG_SIDE,
        upright=settings.SIFT_UPRIGHT,
    )


def verification_config() -> VerificationConfig:
    """How SIFT matches are verified at search time (``RERANK_GEOMETRY`` on the served verification)."""
    return dataclasses.replace(SERVED.verification, geometry=cast(GeometryMethod, settings.RERANK_GEOMETRY))


def local_format() -> LocalFeatureFormat:
    """How index SIFT is stored (``LOCAL_FEATURES_FORMAT``); a misspelt setting is a configuration error."""
    try:
        return LocalFeatureFormat.parse(settings.LOCAL_FEATURES_FORMAT)
    except ValueError as error:
        raise ImproperlyConfigured(f"LOCAL_FEATURES_FORMAT: {error}") from error


def sift_store() -> LocalFeatureStore:
    """A folder per SIFT settings, decode policy and storage format: a new setting starts a new folder,
    never mixes."""
    fmt = local_format()
    return LocalFeatureStore(
        feature_blobs("sift"), local_features_key(sift_config(), decode_policy(), fmt), fmt
    )


def active_codebook() -> VladCodebook | None:
    return VladCodebook.objects.filter(is_active=True).first()


@lru_cache(maxsize=4)
def _encoder(path: str, settings_path: str, whitening_path: str | None) -> VladEncoder:
    centroids = codebook_from_bytes(read_file(path), read_file(settings_path), name=path)[0]
    if whitening_path is None:
        return VladEncoder(centroids)
    return VladEncoder(centroids, pca_whitening_from_bytes(read_file(whitening_path)))


def vlad_encoder(codebook: VladCodebook) -> VladEncoder:
    """The codebook's encoder (PCA-whitened if the codebook has a whitening), loaded once per process from
    the shared folder or the bucket (through STORAGE_CACHE_DIR). A missing or unreachable file raises
    `webapp.storage.StoredFileUnavailable` naming it."""
    whitening = codebook.whitening_path if codebook.whitening_dim else None
    return _encoder(codebook.path, codebook.settings_path, whitening)


def vlad_store(codebook: VladCodebook, *, create: bool = True) -> MilvusVectorStore:
    return collection_store(codebook.collection_name, codebook.vector_dim, create=create)


def extract_local_features(
    image_ids: Sequence[int],
    *,
    force: bool = False,
    progress: Callable[[int, int], None] | None = None,
) -> dict[str, int]:
    """SIFT for each image of the batch (skipped if stored, unless ``force``), then its VLAD if a codebook
    is active.

    One task handles a whole batch: the images are extracted over ``LOCAL_FEATURE_THREADS`` threads (decoding
    and OpenCV's SIFT release the GIL), and stored as each one finishes, in id order. Idempotent: files are
    overwritten atomically, a re-run keeps what is stored, and VLAD vectors are upserted by image id.
    """
    store, cfg, policy = sift_store(), sift_config(), decode_policy()
    codebook = active_codebook()
    encoder = vlad_encoder(codebook) if codebook is not None else None  # a missing codebook fails the batch
    images = list(Image.objects.filter(pk__in=image_ids).order_by("pk"))
    counts = {"extracted": 0, "kept": 0, "failed": 0, "vlad": 0}
    stored: list[int] = []
    vlad_rows: list[tuple[int, np.ndarray, int | None]] = []

    def features_of(image: Image) -> tuple[LocalFeatures, bool]:
        """The image's features and whether they were extracted now (False: loaded from the store).

        A stored file is kept only when this image's row records it: a file under a reused id (a rolled-back
        registration's, e.g. in tests on SQLite) belongs to another photo and is extracted again."""
        if force or image.local_features_at is None or not store.has(image.pk):
            return index_local_features(photo_bytes(image.file), cfg, policy, store.format), True
        return store.load(image.pk), False

    threads = max(1, min(settings.LOCAL_FEATURE_THREADS, len(images)))
    with ThreadPoolExecutor(max_workers=threads, thread_name_prefix="sift") as pool:
        futures = [pool.submit(features_of, image) for image in images]
        for done, (image, future) in enumerate(zip(images, futures, strict=True), start=1):
            try:
                features, extracted = future.result()
                if extracted:
                    store.save(image.pk, features)
            except (ImageLoadError, OSError, ValueError) as error:
                logger.warning("no local features for image %s: %s", image.pk, error)
                counts["failed"] += 1
            else:
                counts["extracted" if extracted else "kept"] += 1
                stored.append(image.pk)
                if encoder is not None and len(features):
                    encoded = encoder.encode(features.descriptors)
                    vlad_rows.append((image.pk, encoded, image.landmark_id))
            if progress is not None:
                progress(done, len(images))
    if codebook is not None and vlad_rows:
        vectors = vlad_store(codebook)
        ids, encoded_vectors, landmarks = zip(*vlad_rows, strict=True)
        vectors.upsert(list(ids), np.stack(encoded_vectors), list(landmarks))
        vectors.flush()
        counts["vlad"] = len(vlad_rows)
    Image.objects.filter(pk__in=stored).update(local_features_at=timezone.now())
    return counts


def schedule_local_features(image_ids: Sequence[int]) -> None:
    """Queue SIFT/VLAD extraction (cpu queue) once the current transaction commits."""
    send_batches_on_commit(
        task_names.EXTRACT_LOCAL_FEATURES, [int(i) for i in image_ids], settings.INDEX_TASK_BATCH
    )


def build_codebook(
    clusters: int, *, whitening_dim: int | None = None, max_descriptors: int = 200_000, seed: int = 0
) -> VladCodebook:
    """Learn a VLAD codebook from stored RootSIFT of the collection (never from query-split images) and
    make it active; VLAD vectors are then (re)computed by `extract_local_features`. With ``whitening_dim``,
    a PCA-whitening of the collection's VLADs to that many dimensions is learnt too."""
    store = sift_store()
    ids = list(Image.objects.exclude(split=Image.Split.QUERY).order_by("pk").values_list("pk", flat=True))
    loaded = store.load_many(ids)
    descriptors = [f.descriptors for f in loaded.values() if len(f)]
    if not descriptors:
        raise ValueError("no stored SIFT features yet: run build_local_features first")
    stacked = np.concatenate(descriptors)
    codebook = train_codebook(stacked, k=clusters, seed=seed, max_samples=max_descriptors)
    key = f"vlad-k{clusters}-{store.extractor_key}-n{len(stacked)}-s{seed}-w{whitening_dim or 0}"
    npy, meta = codebook_to_bytes(codebook, {"clusters": clusters, "sift": store.extractor_key, "seed": seed})
    whitening = None
    if whitening_dim:
        vlads = np.stack([vlad(d, codebook) for d in descriptors])
        whitening_dim = min(whitening_dim, len(vlads) - 1)
        whitening = pca_whitening_to_bytes(fit_pca_whitening(vlads, whitening_dim))
    stem = key
    if settings.STORAGE_BACKEND == "s3":
        # Readers keep a copy in STORAGE_CACHE_DIR that is never checked again: an object name carries a
        # digest of its bytes, so a codebook rebuilt under the same settings is a new object, never a stale
        # copy. Local files keep their names, as before.
        stem += "-" + hashlib.sha256(npy + meta + (whitening or b"")).hexdigest()[:12]
    # FEATURES_ROOT/codebooks/<stem>.{npy,json,pca.npz}, or <STORAGE_PREFIX>/codebooks/... in the bucket.
    path = put_file("codebooks", f"{stem}.npy", npy)
    put_file("codebooks", f"{stem}.json", meta)
    if whitening is not None:
        put_file("codebooks", f"{stem}.pca.npz", whitening)
    digest = hashlib.sha256(key.encode()).hexdigest()[:10]
    collection = f"{settings.MILVUS_COLLECTION_PREFIX}_vlad_k{clusters}_{digest}"
    with transaction.atomic():
        VladCodebook.objects.update(is_active=False)
        record, _ = VladCodebook.objects.update_or_create(
            key=key,
            defaults={
                "clusters": clusters,
                "path": path,
                "collection_name": collection,
                "descriptor_count": len(stacked),
                "whitening_dim": whitening_dim or None,
                "is_active": True,
            },
        )
    vlad_store(record)  # the collection exists before the first search asks for it
    _encoder.cache_clear()
    return record


def clear_caches() -> None:
    _encoder.cache_clear()
