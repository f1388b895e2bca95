"""The served search pipeline: ``retrieval_core.search.SearchPipeline`` over the product's parts.

The active model's extractor, its Milvus collection (a client only: a search makes no has/describe/load
call, and a missing collection raises ``CollectionMissingError``), the scorer for the asked method and the
tuned fusion weight. The API, the search page, ``tune_fusion`` and ``evaluate --served`` all build their
pipeline here.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from django.conf import settings

from retrieval_core.rerank.fusion import FusionConfig
from retrieval_core.rerank.scorer import RerankMethod
from retrieval_core.search.config import SearchConfig
from retrieval_core.search.pipeline import SearchPipeline
from retrieval_core.search.recognition import RecognitionConfig
from webapp.catalog.selectors import landmark_shares
from webapp.embeddings.models import EmbeddingModelVersion
from webapp.embeddings.services import collection_store, decode_policy, get_active_version, get_extractor
from webapp.reranking.fusion import fusion_config
from webapp.reranking.scoring import build_scorer

__all__ = ["CatalogueLandmarkShares", "recognition_config", "served_pipeline"]


class CatalogueLandmarkShares:
    """``LandmarkShares`` from the catalogue: each landmark's fraction of the indexed photos."""

    def shares(self, landmark_ids: Sequence[int]) -> dict[int, float]:
        return landmark_shares(landmark_ids)


def recognition_config() -> RecognitionConfig:
    """How a search names its landmark: the top ``RECOGNITION_TOP_N`` results vote, and below
    ``RECOGNITION_THRESHOLD`` confidence the answer is "not in the collection"."""
    return RecognitionConfig(top_n=settings.RECOGNITION_TOP_N, threshold=settings.RECOGNITION_THRESHOLD)


def served_pipeline(
    method: RerankMethod,
    *,
    version: EmbeddingModelVersion | None = None,
    fusion: FusionConfig | None = None,
) -> SearchPipeline:
    """The pipeline ``POST /api/search/`` runs for ``method``; ``fusion`` overrides the tuned weight
    (tuning probes with it). Raises ``RerankUnavailable`` when the method has no data to run on."""
    version = version or get_active_version()
    fusion = fusion or fusion_config(method)
    if method != "none":
        fusion = dataclasses.replace(fusion, local_method=method)
    config = SearchConfig(
        k=settings.SEARCH_TOP_K,
        fusion=fusion,
        patch_top_n=max(settings.PATCHES_TOP_N, 1),
        decode=decode_policy(),
        verified_expansion=settings.RERANK_VERIFIED_EXPANSION if method == "sift" else 0,
        verified_expansion_inliers=settings.RERANK_VERIFIED_EXPANSION_INLIERS,
        recognition=recognition_config(),
    )
    return SearchPipeline(
        get_extractor(version.config),
        collection_store(version.collection_name, version.dim, create=False),
        build_scorer(method, version, min_inliers=fusion.min_inliers),
        config,
        landmark_shares=CatalogueLandmarkShares(),
    )
