"""Tuning the fusion weight v on validation queries through the served pipeline, never on reported ones.

Each validation image is searched (itself excluded) over the live index by the same ``SearchPipeline``
that ``POST /api/search/`` runs; its candidates are scored once and every v only re-ranks them
(`retrieval_core.search.tuning`).
"""

from __future__ import annotations

import dataclasses
from collections import defaultdict
from collections.abc import Callable

import numpy as np
from django.conf import settings

from retrieval_core.rerank.scorer import RerankMethod
from retrieval_core.search.tuning import tune_fusion_weight
from webapp.catalog.models import Image
from webapp.media import photo_bytes
from webapp.reranking.fusion import fusion_config
from webapp.reranking.models import FusionSetting
from webapp.search.pipeline import served_pipeline

__all__ = ["tune_fusion", "validation_queries"]


def validation_queries(*, seed: int = 0, per_landmark: int = 2) -> list[Image]:
    """Images to tune on: the ``validation`` split if the collection has one, else a seeded pick of
    ``per_landmark`` indexed images per landmark. Images of the reported ``query`` split are never used."""
    indexed = Image.objects.filter(status=Image.Status.INDEXED, landmark__isnull=False)
    marked = list(indexed.filter(split=Image.Split.VALIDATION).order_by("pk"))
    if marked:
        return marked
    by_landmark: dict[int, list[Image]] = defaultdict(list)
    for image in indexed.exclude(split=Image.Split.QUERY).order_by("pk"):
        if image.landmark_id is not None:  # always: `indexed` holds labelled images only
            by_landmark[image.landmark_id].append(image)
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
    method: RerankMethod,
    *,
    seed: int = 0,
    per_landmark: int = 2,
    progress: Callable[[int, int], None] | None = None,
) -> FusionSetting:
    """Choose the fusion weight v for ``method`` by mAP@100 on validation queries and store it."""
    if method not in ("sift", "vlad", "patches"):
        raise ValueError(f"cannot tune {method!r}; use sift, vlad or patches")
    queries = validation_queries(seed=seed, per_landmark=per_landmark)
    if not queries:
        raise ValueError("no labelled, indexed images to tune on: import a labelled collection first")
    # The served fusion (inlier floor, verified and landmark first) at the served depth; only v varies.
    probe = dataclasses.replace(fusion_config(method), weight_global=1.0, top_k=settings.RERANK_TOP_K)
    pipeline = served_pipeline(method, fusion=probe)
    members: dict[int | None, set[int]] = defaultdict(set)  # None: the unlabelled photos
    for pk, landmark_id in Image.objects.filter(status=Image.Status.INDEXED).values_list("pk", "landmark_id"):
        members[landmark_id].add(pk)
    scored, positives = [], []
    for done, image in enumerate(queries, start=1):
        query = pipeline.embed(pipeline.decode(photo_bytes(image.file)))
        hits = pipeline.candidates(query, probe.top_k, exclude_ids=[image.pk])
        scored.append(pipeline.score(query, hits))
        positives.append(members[image.landmark_id] - {image.pk})
        if progress is not None:
            progress(done, len(queries))
    best, table = tune_fusion_weight(scored, positives, fusion=probe, k=100)
    scores = dict(table)
    return FusionSetting.objects.create(
        method=method,
        weight_global=best,
        top_k=probe.top_k,
        validation_map=scores[best],
        baseline_map=scores.get(1.0, float("nan")),
        validation_queries=len(queries),
        table=[[v, score] for v, score in table],
    )
