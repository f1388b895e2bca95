"""Local features per image (extracted at index time) and the re-ranking of search candidates with them.

Index time: SIFT (RootSIFT, capped keypoints) goes to a versioned on-disk store, VLAD vectors (once a
codebook exists) to their own Milvus collection, CNN patches (from the embedding forward pass, see
`webapp.embeddings.services.index_images`) to a patch store. Query time: only the query's own features are
computed; candidates' features are loaded, never recomputed. Missing or empty local data degrades to the
global score with a logged warning.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from functools import lru_cache
from pathlib import Path

import numpy as np
from django.conf import settings
from django.core.files.base import ContentFile
from django.db import transaction
from django.db.models import Count
from django.utils import timezone
from PIL import Image as PILImage

from retrieval_core.atomic import atomic_write
from retrieval_core.features.sift import SiftConfig, extract_sift
from retrieval_core.features.store import LocalFeatureStore, PatchStore
from retrieval_core.features.vlad import (
    PcaWhitening,
    apply_pca_whitening,
    fit_pca_whitening,
    load_codebook,
    save_codebook,
    train_codebook,
    vlad,
)
from retrieval_core.imaging import ImageLoadError, load_image
from retrieval_core.index.milvus_store import MilvusVectorStore, VectorHit
from retrieval_core.rerank.fusion import Candidate, FusionConfig, RerankedHit, rank_fused
from retrieval_core.rerank.patches import patch_similarity
from retrieval_core.rerank.reranker import Reranker, RerankerConfig
from retrieval_core.rerank.tuning import tune_fusion_weight
from webapp.catalog.models import Image
from webapp.embeddings.models import EmbeddingModelVersion
from webapp.embeddings.services import collection_store, get_active_version, get_extractor, get_store
from webapp.reranking.models import FusionSetting, SearchQuery, VladCodebook
from workers.dispatch import send_batches_on_commit

logger = logging.getLogger(__name__)

METHODS = ("sift", "vlad", "patches", "none")


def sift_config(*, query: bool = False) -> SiftConfig:
    """Index images keep more keypoints than queries: matching cost is their product."""
    keypoints = settings.SIFT_QUERY_MAX_KEYPOINTS if query else settings.SIFT_MAX_KEYPOINTS
    return SiftConfig(max_keypoints=keypoints, long_side=settings.SIFT_LONG_SIDE)


def sift_store() -> LocalFeatureStore:
    return LocalFeatureStore(Path(settings.FEATURES_ROOT) / "sift", sift_config().key)


def patch_store(version: EmbeddingModelVersion) -> PatchStore:
    return PatchStore(
        Path(settings.FEATURES_ROOT) / "patches", f"{version.collection_name}-top{settings.PATCHES_TOP_N}"
    )


def active_codebook() -> VladCodebook | None:
    return VladCodebook.objects.filter(is_active=True).first()


@lru_cache(maxsize=4)
def _vlad_encoder(path: str, whitening_path: str | None) -> tuple[np.ndarray, PcaWhitening | None]:
    centroids = load_codebook(Path(path))[0]
    if whitening_path is None:
        return centroids, None
    with np.load(whitening_path, allow_pickle=False) as saved:
        return centroids, PcaWhitening(mean=saved["mean"], projection=saved["projection"])


def encode_vlad(descriptors: np.ndarray, codebook: VladCodebook) -> np.ndarray:
    """(N, 128) RootSIFT codes → the codebook's VLAD vector, PCA-whitened if the codebook has a whitening."""
    centroids, whitening = _vlad_encoder(
        codebook.path, codebook.whitening_path if codebook.whitening_dim else None
    )
    vector = vlad(descriptors, centroids)
    return vector if whitening is None else apply_pca_whitening(vector, whitening)


def vlad_store(codebook: VladCodebook) -> MilvusVectorStore:
    return collection_store(codebook.collection_name, codebook.vector_dim)


def extract_local_features(
    image_ids: Sequence[int],
    *,
    force: bool = False,
    progress: Callable[[int, int], None] | None = None,
) -> dict[str, int]:
    """SIFT for each image (skipped if stored, unless ``force``), then its VLAD if a codebook is active.

    Idempotent: files are overwritten atomically and VLAD vectors upserted by image id.
    """
    store = sift_store()
    cfg = sift_config()
    codebook = active_codebook()
    images = list(Image.objects.filter(pk__in=image_ids).order_by("pk"))
    counts = {"extracted": 0, "kept": 0, "failed": 0, "vlad": 0}
    stored: list[int] = []
    vlad_ids: list[int] = []
    vlad_vectors: list[np.ndarray] = []
    vlad_landmarks: list[int | None] = []
    for done, image in enumerate(images, start=1):
        try:
            if force or not store.has(image.pk):
                features = extract_sift(np.asarray(load_image(image.file.path)), cfg)
                store.save(image.pk, features)
                counts["extracted"] += 1
            else:
                features = store.load(image.pk)
                counts["kept"] += 1
        except (ImageLoadError, OSError, ValueError) as error:
            logger.warning("no local features for image %s: %s", image.pk, error)
            counts["failed"] += 1
        else:
            stored.append(image.pk)
            if codebook is not None and len(features):
                vlad_ids.append(image.pk)
                vlad_vectors.append(encode_vlad(features.descriptors, codebook))
                vlad_landmarks.append(image.landmark_id)
        if progress is not None:
            progress(done, len(images))
    if codebook is not None and vlad_ids:
        store_v = vlad_store(codebook)
        store_v.upsert(vlad_ids, np.stack(vlad_vectors), vlad_landmarks)
        store_v.flush()
        counts["vlad"] = len(vlad_ids)
    Image.objects.filter(pk__in=stored).update(local_features_at=timezone.now())
    return counts


def schedule_local_features(image_ids: Sequence[int]) -> None:
    """Queue SIFT/VLAD extraction (cpu queue) once the current transaction commits."""
    from workers.tasks.cpu import extract_local_features as task

    send_batches_on_commit(task, [int(i) for i in image_ids], settings.INDEX_TASK_BATCH)


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
    path = Path(settings.FEATURES_ROOT) / "codebooks" / f"{key}.npy"
    save_codebook(path, codebook, {"clusters": clusters, "sift": store.extractor_key, "seed": seed})
    if whitening_dim:
        vlads = np.stack([vlad(d, codebook) for d in descriptors])
        whitening_dim = min(whitening_dim, len(vlads) - 1)
        pca = fit_pca_whitening(vlads, whitening_dim)
        whitening_file = Path(str(path).removesuffix(".npy") + ".pca.npz")
        atomic_write(
            whitening_file, lambda handle: np.savez(handle, mean=pca.mean, projection=pca.projection)
        )
    digest = hashlib.sha256(key.encode()).hexdigest()[:10]
    collection = f"{settings.MILVUS_COLLECTION_PREFIX}_vlad_k{clusters}_{digest}"
    with transaction.atomic():
        VladCodebook.objects.update(is_active=False)
        record, _ = VladCodebook.objects.update_or_create(
            key=key,
            defaults={
                "clusters": clusters,
                "path": str(path),
                "collection_name": collection,
                "descriptor_count": len(stacked),
                "whitening_dim": whitening_dim or None,
                "is_active": True,
            },
        )
    _vlad_encoder.cache_clear()
    return record


def fusion_config(method: str) -> FusionConfig:
    """The newest tuned weight for ``method``, else the configured default."""
    tuned = FusionSetting.objects.filter(method=method).first()
    weight = tuned.weight_global if tuned else settings.FUSION_WEIGHT_GLOBAL
    top_k = tuned.top_k if tuned else settings.RERANK_TOP_K
    return FusionConfig(weight_global=weight, top_k=top_k, local_method=method)  # type: ignore[arg-type]


@dataclass(frozen=True)
class RerankOutcome:
    hits: list[RerankedHit]
    method: str
    weight_global: float
    timings_ms: dict[str, float] = field(default_factory=dict)
    missing: int = 0


def rerank(
    method: str,
    query_image: PILImage.Image,
    query_patches: np.ndarray | None,
    candidates: Sequence[VectorHit],
    version: EmbeddingModelVersion,
    *,
    fusion: FusionConfig | None = None,
) -> RerankOutcome:
    """Re-rank ANN candidates (best first) with local evidence fused with their global scores."""
    if method not in METHODS:
        raise ValueError(f"unknown re-ranking method {method!r}; use one of {', '.join(METHODS)}")
    ranked = [Candidate(hit.image_id, hit.score) for hit in candidates]
    if method == "none" or not ranked:
        cfg = FusionConfig(weight_global=1.0, top_k=len(ranked))
        return RerankOutcome(rank_fused(ranked, [None] * len(ranked), cfg), "none", 1.0)
    cfg = fusion or fusion_config(method)
    timings: dict[str, float] = {}
    started = time.perf_counter()
    if method == "sift":
        query = extract_sift(np.asarray(query_image), sift_config(query=True))
        timings["query_features"] = elapsed_ms(started)
        mark = time.perf_counter()
        features = sift_store().load_many([c.image_id for c in ranked[: cfg.top_k]])
        timings["load"] = elapsed_ms(mark)
        result = Reranker(RerankerConfig(fusion=cfg)).rerank(query, ranked, features)
        timings.update({f"{stage}": round(1000 * s, 2) for stage, s in result.timings.items()})
        return RerankOutcome(result.hits, method, cfg.weight_global, timings, len(result.missing))
    head = ranked[: cfg.top_k]
    local_raw: list[float | None]
    if method == "vlad":
        local_raw = _vlad_scores(query_image, head)
    else:
        local_raw = _patch_scores(query_patches, head, version)
    timings["local"] = elapsed_ms(started)
    missing = sum(score is None for score in local_raw)
    if missing:
        logger.warning(
            "%s: no local data for %d of %d candidates: global score kept", method, missing, len(head)
        )
    mark = time.perf_counter()
    hits = rank_fused(head, local_raw, cfg)
    tail = rank_fused(ranked[cfg.top_k :], [None] * (len(ranked) - len(head)), cfg)
    timings["fuse"] = elapsed_ms(mark)
    return RerankOutcome(hits + tail, method, cfg.weight_global, timings, missing)


def _vlad_scores(query_image: PILImage.Image, head: Sequence[Candidate]) -> list[float | None]:
    codebook = active_codebook()
    if codebook is None:
        logger.warning("VLAD re-ranking asked for, but no codebook exists: run build_local_features --vlad")
        return [None] * len(head)
    query = extract_sift(np.asarray(query_image), sift_config(query=True))
    if not len(query):
        return [None] * len(head)
    q = encode_vlad(query.descriptors, codebook)
    stored = vlad_store(codebook).get_vectors([int(c.image_id) for c in head])
    return [float(q @ stored[c.image_id]) if c.image_id in stored else None for c in head]


def _patch_scores(
    query_patches: np.ndarray | None, head: Sequence[Candidate], version: EmbeddingModelVersion
) -> list[float | None]:
    if query_patches is None or not len(query_patches):
        return [None] * len(head)
    stored = patch_store(version).load_many([c.image_id for c in head])
    return [
        patch_similarity(query_patches, stored[c.image_id]) if c.image_id in stored else None for c in head
    ]


def match_points(hit: RerankedHit) -> list[list[float]]:
    """Inlier pairs ``[xq, yq, xr, yr]`` in original pixels, for drawing (empty without SIFT evidence)."""
    if hit.evidence is None:
        return []
    return np.round(hit.evidence.points, 1).tolist()


def elapsed_ms(since: float) -> float:
    """Milliseconds since a ``time.perf_counter()`` mark, for per-stage timings in responses."""
    return round(1000 * (time.perf_counter() - since), 2)


def clear_caches() -> None:
    _vlad_encoder.cache_clear()


def validation_queries(*, seed: int = 0, per_landmark: int = 2) -> list[Image]:
    """Images to tune on: the ``validation`` split if the collection has one, else a seeded pick of
    ``per_landmark`` indexed images per landmark. Images of the reported ``query`` split are never used."""
    indexed = Image.objects.filter(status=Image.Status.INDEXED, landmark__isnull=False)
    marked = list(indexed.filter(split=Image.Split.VALIDATION).order_by("pk"))
    if marked:
        return marked
    by_landmark: dict[int, list[Image]] = {}
    for image in indexed.exclude(split=Image.Split.QUERY).order_by("pk"):
        by_landmark.setdefault(image.landmark_id, []).append(image)
    rng = np.random.default_rng(seed)
    picked: list[Image] = []
    for landmark_id in sorted(by_landmark):
        images = by_landmark[landmark_id]
        if len(images) < 2:  # a query needs at least one other image of its landmark
            continue
        order = rng.permutation(len(images))[: min(per_landmark, len(images) - 1)]
        picked.extend(images[i] for i in sorted(order))
    return picked


def tune_fusion(
    method: str,
    *,
    seed: int = 0,
    per_landmark: int = 2,
    progress: Callable[[int, int], None] | None = None,
) -> FusionSetting:
    """Choose the fusion weight v for ``method`` by mAP@100 on validation queries and store it.

    Each validation image is searched (excluding itself) over the live index; local scores are computed
    once and every v only re-sorts them (retrieval_core.rerank.tuning).
    """
    if method not in ("sift", "vlad", "patches"):
        raise ValueError(f"cannot tune {method!r}; use sift, vlad or patches")
    queries = validation_queries(seed=seed, per_landmark=per_landmark)
    if not queries:
        raise ValueError("no labelled, indexed images to tune on: import a labelled collection first")
    version = get_active_version()
    extractor = get_extractor(version.config)
    store = get_store(version)
    top_k = settings.RERANK_TOP_K
    probe = FusionConfig(weight_global=1.0, top_k=top_k, local_method=method)  # type: ignore[arg-type]
    landmark_sizes = dict(
        Image.objects.filter(status=Image.Status.INDEXED)
        .values_list("landmark_id")
        .annotate(count=Count("pk"))
    )
    landmark_of = dict(Image.objects.filter(status=Image.Status.INDEXED).values_list("pk", "landmark_id"))
    globals_, locals_, relevance, n_relevant = [], [], [], []
    for done, image in enumerate(queries, start=1):
        decoded = extractor.load(image.file.path)
        patch_top_n = settings.PATCHES_TOP_N if method == "patches" else 0
        vectors, patches = extractor.extract_with_patches([decoded], patch_top_n)
        candidates = store.search(vectors, k=top_k, exclude_ids=[image.pk])[0]
        outcome = rerank(method, decoded, patches[0] if patches else None, candidates, version, fusion=probe)
        hits = sorted(outcome.hits, key=lambda hit: hit.global_rank)
        globals_.append(np.array([hit.global_score for hit in hits]))
        locals_.append(np.array([_raw_local(hit, method) for hit in hits], np.float64))
        relevance.append(np.array([landmark_of.get(hit.image_id) == image.landmark_id for hit in hits]))
        n_relevant.append(max(landmark_sizes.get(image.landmark_id, 1) - 1, int(relevance[-1].sum())))
        if progress is not None:
            progress(done, len(queries))
    best, table = tune_fusion_weight(
        globals_, locals_, relevance, cfg=probe, n_relevant_per_query=n_relevant, k=100
    )
    scores = dict(table)
    return FusionSetting.objects.create(
        method=method,
        weight_global=best,
        top_k=top_k,
        validation_map=scores[best],
        baseline_map=scores.get(1.0, float("nan")),
        validation_queries=len(queries),
        table=[[v, score] for v, score in table],
    )


def _raw_local(hit: RerankedHit, method: str) -> float:
    """The raw local score tuning expects: inliers for SIFT, cosine otherwise; NaN when missing."""
    if method == "sift":
        return float("nan") if hit.evidence is None else float(hit.evidence.inliers)
    return float("nan") if hit.local_score is None else float(hit.local_score)


def keep_query(content: bytes, evidence: dict[str, list[list[float]]]) -> SearchQuery:
    """Keep a query photo and its match evidence for the result pages; forget those past retention."""
    cutoff = timezone.now() - timedelta(hours=settings.QUERY_RETENTION_HOURS)
    for expired in SearchQuery.objects.filter(created_at__lt=cutoff)[:100]:
        expired.file.delete(save=False)
        expired.delete()
    query = SearchQuery(evidence=evidence)
    query.file.save(f"{query.id}.jpg", ContentFile(content), save=True)
    return query
