"""Extracting what an evaluation needs, once, into a ``FeatureCache``, timing every image.

Global vectors and CNN patches come from the same forward pass: a hook on the network's pooling layer
catches the feature map it pools, so E7's patches cost a ``select_patches`` call, not a second network run
(the thesis ran the network again for 100 index images per query). Queries can be extracted one at a time,
so their recorded seconds are a single query's latency rather than a share of a batch.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from retrieval_core.eval.feature_cache import FeatureCache
from retrieval_core.features.global_ import GlobalDescriptorExtractor
from retrieval_core.features.sift import LocalFeatures, SiftConfig, extract_sift
from retrieval_core.imaging import ImageLoadError, load_image
from retrieval_core.rerank.patches import PatchMethod, select_patches

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
    paths: Mapping[str, Path],
    ids: Sequence[str],
    progress: Progress | None = None,
) -> list[str]:
    """Make sure ``cache`` holds SIFT features of ``ids`` under ``cfg``; returns messages of failures."""
    todo = cache.sift_missing(cfg, ids)
    failures: list[str] = []
    for start in range(0, len(todo), _CHUNK):
        features: dict[str, LocalFeatures] = {}
        seconds: dict[str, float] = {}
        for image_id in todo[start : start + _CHUNK]:
            t0 = time.perf_counter()
            try:
                pixels = np.asarray(load_image(paths[image_id], draft_long_side=cfg.long_side))
                features[image_id] = extract_sift(pixels, cfg)
            except ImageLoadError as error:
                failures.append(f"{image_id}: {error}")
                features[image_id] = LocalFeatures.empty((1, 1))
            seconds[image_id] = time.perf_counter() - t0
        cache.put_sift(cfg, features, seconds)
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
    """Vectors ``(D,)``, float16 patch sets ``(n, D)`` and seconds per path, in order."""
    n = len(paths)
    vectors = [np.zeros(extractor.dim, np.float32)] * n
    patch_sets = [np.zeros((0, extractor.dim), np.float16)] * n
    seconds = [float("nan")] * n
    tensors: dict[int, torch.Tensor] = {}
    decode_seconds: dict[int, float] = {}

    def decode(i: int) -> None:
        t0 = time.perf_counter()
        try:
            tensors[i] = extractor.preprocess(extractor.load(paths[i]))
        except ImageLoadError as error:
            failures.append(f"{paths[i]}: {error}")
        decode_seconds[i] = time.perf_counter() - t0

    def forward(group: list[int]) -> None:
        t0 = time.perf_counter()
        batch_vectors, maps = _forward_with_map(extractor, torch.stack([tensors[i] for i in group]))
        for row, i in enumerate(group):
            vectors[i] = batch_vectors[row]
            if patches:
                patch_sets[i] = select_patches(maps[row], patches.top_n).astype(np.float16)
        share = (time.perf_counter() - t0) / len(group)
        for i in group:
            seconds[i] = decode_seconds[i] + share

    if one_at_a_time:
        for i in range(n):
            decode(i)
            if i in tensors:
                forward([i])
        return vectors, patch_sets, seconds
    with ThreadPoolExecutor(max_workers=2, thread_name_prefix="decode") as pool:
        list(pool.map(decode, range(n)))
    by_shape: defaultdict[tuple[int, ...], list[int]] = defaultdict(list)
    for i in sorted(tensors):
        by_shape[tuple(tensors[i].shape)].append(i)
    for members in by_shape.values():
        for start in range(0, len(members), batch_size):
            forward(members[start : start + batch_size])
    return vectors, patch_sets, seconds


def _forward_with_map(
    extractor: GlobalDescriptorExtractor, batch: torch.Tensor
) -> tuple[np.ndarray, torch.Tensor]:
    """``(B, 3, H, W)`` uint8 -> ``(B, D)`` vectors and the ``(B, D, h, w)`` map the pooling layer saw."""
    captured: list[torch.Tensor] = []
    hook = extractor.net.pool.register_forward_hook(lambda _module, inputs, _out: captured.append(inputs[0]))
    try:
        vectors = extractor.embed_batch(batch)
    finally:
        hook.remove()
    return vectors, captured[0].float().cpu()
