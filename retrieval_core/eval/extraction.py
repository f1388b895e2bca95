"""Extracting what an evaluation needs, once, into a ``FeatureCache``, timing every image.

Global vectors and CNN patches come from the same forward pass
(``GlobalDescriptorExtractor.embed_batch_with_patches``), so E7's patches cost a ``select_patches`` call,
not a second network run (the thesis ran the network again for 100 index images per query). Queries can
be extracted one at a time, so their recorded seconds are a single query's latency, not a batch share.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from retrieval_core.eval.feature_disk_cache import FeatureCache
from retrieval_core.features.compact import FULL_FORMAT, LocalFeatureFormat
from retrieval_core.features.global_ import GlobalDescriptorExtractor
from retrieval_core.features.sift import LocalFeatures, SiftConfig
from retrieval_core.imaging import ImageLoadError
from retrieval_core.rerank.patches import PatchMethod
from retrieval_core.search.decode import DecodePolicy, index_local_features, local_features_key

__all__ = ["PatchConfig", "ensure_cnn_features", "ensure_sift", "global_key", "patch_key"]

Progress = Callable[[int, int], None]
_CHUNK = 256  # images per cache write: an interrupted run keeps what it extracted


@dataclass(frozen=True)
class PatchConfig:
    """CNN patch descriptors: the ``top_n`` most activated feature-map locations, stored as float16."""

    top_n: int = 32
    method: PatchMethod = "asymmetric"

    def __post_init__(self) -> None:
        if self.top_n <= 0:
            raise ValueError(f"top_n must be positive, got {self.top_n}")


def global_key(extractor: GlobalDescriptorExtractor) -> str:
    return extractor.config.version_key


def patch_key(extractor: GlobalDescriptorExtractor, cfg: PatchConfig) -> str:
    return f"{extractor.config.version_key}-patches{cfg.top_n}"


def ensure_cnn_features(
    cache: FeatureCache,
    extractor: GlobalDescriptorExtractor,
    paths: Mapping[str, Path],
    ids: Sequence[str],
    patches: PatchConfig | None,
    *,
    one_at_a_time: bool = False,
    batch_size: int = 16,
    progress: Progress | None = None,
) -> list[str]:
    """Make sure ``cache`` holds global vectors (and patches) of ``ids``; returns messages of failures.

    An image that cannot be decoded gets a zero vector and no patches, so it ranks last, not never.
    """
    keys = [global_key(extractor)] + ([patch_key(extractor, patches)] if patches else [])
    lacking = set().union(*(cache.missing(key, ids) for key in keys))
    todo = [image_id for image_id in dict.fromkeys(ids) if image_id in lacking]
    failures: list[str] = []
    for start in range(0, len(todo), _CHUNK):
        chunk = todo[start : start + _CHUNK]
        vectors, patch_sets, seconds = _embed_chunk(
            extractor, [paths[i] for i in chunk], patches, one_at_a_time, batch_size, failures
        )
        cache.put(keys[0], dict(zip(chunk, vectors, strict=True)), dict(zip(chunk, seconds, strict=True)))
        if patches:
            cache.put(
                keys[1], dict(zip(chunk, patch_sets, strict=True)), dict(zip(chunk, seconds, strict=True))
            )
        if progress is not None:
            progress(start + len(chunk), len(todo))
    return failures


def ensure_sift(
    cache: FeatureCache,
    cfg: SiftConfig,
    policy: DecodePolicy,
    paths: Mapping[str, Path],
    ids: Sequence[str],
    progress: Progress | None = None,
    fmt: LocalFeatureFormat = FULL_FORMAT,
) -> list[str]:
    """Make sure ``cache`` holds SIFT features of ``ids`` under ``cfg``, extracted by the product's own
    index-time function (``index_local_features``) and stored in ``fmt``; returns messages of failures."""
    key = local_features_key(cfg, policy, fmt)
    todo = cache.sift_missing(key, ids)
    failures: list[str] = []
    for start in range(0, len(todo), _CHUNK):
        features: dict[str, LocalFeatures] = {}
        seconds: dict[str, float] = {}
        for image_id in todo[start : start + _CHUNK]:
            t0 = time.perf_counter()
            try:
                features[image_id] = index_local_features(paths[image_id], cfg, policy, fmt)
            except ImageLoadError as error:
                failures.append(f"{image_id}: {error}")
                features[image_id] = LocalFeatures.empty((1, 1))
            seconds[image_id] = time.perf_counter() - t0
        cache.put_sift(key, features, seconds, fmt)
        if progress is not None:
            progress(start + len(features), len(todo))
    return failures


def _embed_chunk(
    extractor: GlobalDescriptorExtractor,
    paths: Sequence[Path],
    patches: PatchConfig | None,
    one_at_a_time: bool,
    batch_size: int,
    failures: list[str],
) -> tuple[list[np.ndarray], list[np.ndarray], list[float]]:
    """Vectors ``(D,)``, float16 patch sets ``(n, D)`` and seconds per path, in order.

    Batched, an image's seconds are its share of the whole chunk's time (not a latency).
    """
    n, top_n = len(paths), patches.top_n if patches else 0
    vectors = [np.zeros(extractor.dim, np.float32)] * n
    patch_sets = [np.zeros((0, extractor.dim), np.float16)] * n
    seconds = [float("nan")] * n
    if one_at_a_time:
        for i, path in enumerate(paths):
            t0 = time.perf_counter()
            try:
                tensor = extractor.preprocess(extractor.load(path))
            except ImageLoadError as error:
                failures.append(f"{path}: {error}")
                continue
            batch_vectors, batch_patches = extractor.embed_batch_with_patches(tensor[None], top_n)
            vectors[i] = batch_vectors[0]
            if top_n:
                patch_sets[i] = batch_patches[0].astype(np.float16)
            seconds[i] = time.perf_counter() - t0
        return vectors, patch_sets, seconds
    t0 = time.perf_counter()
    result = extractor.extract_paths(list(paths), batch_size, workers=2, patch_top_n=top_n)
    share = (time.perf_counter() - t0) / max(n, 1)
    for row, i in enumerate(result.indices.tolist()):
        vectors[i] = result.vectors[row]
        if top_n and result.patches is not None:
            patch_sets[i] = result.patches[row].astype(np.float16)
        seconds[i] = share
    failures.extend(f"{paths[failure.index]}: {failure.message}" for failure in result.failures)
    return vectors, patch_sets, seconds
