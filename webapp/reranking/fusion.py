"""Fusion weights: the newest weight tuned for a method (``tune_fusion``), else the configured default."""

from __future__ import annotations

import dataclasses

from django.conf import settings

from retrieval_core.rerank.fusion import FusionConfig
from retrieval_core.rerank.scorer import RerankMethod
from retrieval_core.search.served import SERVED
from webapp.reranking.models import FusionSetting

__all__ = ["fusion_config"]


def fusion_config(method: RerankMethod) -> FusionConfig:
    """Weight and re-rank depth for ``method``: the newest tuned setting, else the settings' defaults."""
    if method == "none":
        return FusionConfig(weight_global=1.0, top_k=settings.RERANK_TOP_K)
    tuned = FusionSetting.objects.filter(method=method).first()
    weight = tuned.weight_global if tuned else settings.FUSION_WEIGHT_GLOBAL
    top_k = tuned.top_k if tuned else settings.RERANK_TOP_K
    return dataclasses.replace(
        SERVED.search.fusion,
        weight_global=weight,
        top_k=top_k,
        local_method=method,
        min_inliers=settings.RERANK_MIN_INLIERS,
        landmark_first=settings.RERANK_LANDMARK_FIRST,
        landmark_first_majority=settings.RERANK_LANDMARK_FIRST_MAJORITY,
        landmark_first_lift=settings.RERANK_LANDMARK_FIRST_LIFT,
    )
