"""Re-ranking global search hits with local evidence: matching, geometric verification, score fusion."""

from retrieval_core.rerank.fusion import (
    Candidate,
    FusionConfig,
    LocalMethod,
    MatchEvidence,
    RerankedHit,
    fuse,
    normalise_global,
    normalise_local,
    rank_fused,
)
from retrieval_core.rerank.matching import MatchMethod, match_descriptors
from retrieval_core.rerank.patches import PatchMethod, patch_similarity, select_patches
from retrieval_core.rerank.reranker import Reranker, RerankerConfig, RerankResult
from retrieval_core.rerank.tuning import tune_fusion_weight
from retrieval_core.rerank.verification import GeometryMethod, GeometryResult, RansacMethod, verify_geometry

__all__ = [
    "Candidate",
    "FusionConfig",
    "GeometryMethod",
    "GeometryResult",
    "LocalMethod",
    "MatchEvidence",
    "MatchMethod",
    "PatchMethod",
    "RansacMethod",
    "RerankResult",
    "RerankedHit",
    "Reranker",
    "RerankerConfig",
    "fuse",
    "match_descriptors",
    "normalise_global",
    "normalise_local",
    "patch_similarity",
    "rank_fused",
    "select_patches",
    "tune_fusion_weight",
    "verify_geometry",
]
