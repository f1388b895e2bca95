"""The local scorer a search runs with, built from the active stores; a method that cannot run is refused.

``rerank=vlad`` without a codebook (or with its file gone), or ``patches`` without stored patches, raises
``RerankUnavailable`` (the API answers 409 with what to do): a caller always learns which method really ran.
"""

from __future__ import annotations

import threading

from django.conf import settings

from retrieval_core.rerank.feature_lru import CachedFeatureSource
from retrieval_core.rerank.patch_scorer import PatchScorer
from retrieval_core.rerank.scorer import GlobalOnlyScorer, LocalScorer, RerankMethod
from retrieval_core.rerank.sift_scorer import SiftScorer
from retrieval_core.rerank.vlad_scorer import VladScorer
from webapp.embeddings.models import EmbeddingModelVersion
from webapp.embeddings.services import patch_store
from webapp.reranking.local_features import (
    active_codebook,
    sift_config,
    sift_store,
    verification_config,
    vlad_encoder,
    vlad_store,
)
from webapp.storage import StoredFileUnavailable

__all__ = ["RerankUnavailable", "build_scorer"]


class RerankUnavailable(Exception):
    """The asked re-ranking method has no data to run on; the message says what to do."""


def build_scorer(method: RerankMethod, version: EmbeddingModelVersion, *, min_inliers: int) -> LocalScorer:
    """The scorer for ``method`` over the product's stores (makes no Milvus call)."""
    if method == "none":
        return GlobalOnlyScorer()
    if method == "sift":
        return SiftScorer(
            cached_sift_features(), sift_config(query=True), verification_config(), min_inliers=min_inliers
        )
    if method == "vlad":
        codebook = active_codebook()
        if codebook is None:
            raise RerankUnavailable(
                "VLAD re-ranking needs a codebook and none exists yet: run "
                "`python manage.py build_local_features --vlad`, or search with rerank=sift."
            )
        try:
            encoder = vlad_encoder(codebook)
        except StoredFileUnavailable as error:
            if not error.missing:
                raise  # the store did not answer: a ConnectionError, the search answers 503
            raise RerankUnavailable(
                f"the active VLAD codebook {codebook.key} cannot be loaded ({error}): run "
                "`python manage.py build_local_features --vlad` again, or search with rerank=sift."
            ) from error
        return VladScorer(encoder, vlad_store(codebook, create=False), sift_config(query=True))
    if method == "patches":
        store = patch_store(version)
        if settings.PATCHES_TOP_N <= 0 or store.is_empty():
            raise RerankUnavailable(
                f"patch re-ranking needs CNN patches of model {version.name}, and none are stored: set "
                "PATCHES_TOP_N > 0 and re-index (activate the version again), or search with rerank=sift."
            )
        return PatchScorer(store)  # type: ignore[arg-type]  # keys str | int, protocol Hashable (see PatchSource)
    raise ValueError(f"unknown re-ranking method {method!r}")


def cached_sift_features() -> CachedFeatureSource:
    """The index SIFT store behind this process's LRU (``RERANK_FEATURE_CACHE_MB``), one per store.

    Committed images' ids are never reused (PostgreSQL sequences, SQLite AUTOINCREMENT; only a rolled-back
    registration's id can come back, and features are extracted after commit), so a cached entry never
    belongs to another image; ``clear_feature_caches`` empties them (tests, operators).
    """
    store = sift_store()
    where = tuple(
        str(getattr(settings, name, ""))
        for name in ("FEATURES_ROOT", "STORAGE_BACKEND", "AWS_STORAGE_BUCKET_NAME", "STORAGE_PREFIX")
    )
    key = (*where, store.extractor_key, settings.RERANK_FEATURE_CACHE_MB)
    with _caches_lock:
        cache = _caches.get(key)
        if cache is None:
            capacity = settings.RERANK_FEATURE_CACHE_MB * 2**20
            cache = _caches[key] = CachedFeatureSource(store, capacity)  # type: ignore[arg-type]  # keys str | int, protocol Hashable (see LocalFeatureSource)
        return cache


def clear_feature_caches() -> None:
    with _caches_lock:
        _caches.clear()


_caches: dict[tuple[object, ...], CachedFeatureSource] = {}
_caches_lock = threading.Lock()
