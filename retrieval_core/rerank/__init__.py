"""Re-ranking global search hits with local evidence: local scorers, matching, geometric verification,
score fusion."""

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
from retrieval_core.rerank.patch_scorer import PatchScorer, PatchSource
from retrieval_core.rerank.patches import PatchMethod, patch_similarity, select_patches
from retrieval_core.rerank.scorer import (
    RERANK_METHODS,
    GlobalOnlyScorer,
    LocalScorer,
    LocalScores,
    QueryFeatures,
    RerankMethod,
)
from retrieval_core.rerank.sift_scorer import LocalFeatureSource, SiftScorer, VerificationConfig
from retrieval_core.rerank.verification import GeometryMethod, GeometryResult, RansacMethod, verify_geometry
from retrieval_core.rerank.vlad_scorer import VladScorer

__all__ = [
    "RERANK_METHODS",
    "Candidate",
    "FusionConfig",
    "GeometryMethod",
    "GeometryResult",
    "GlobalOnlyScorer",
    "LocalFeatureSource",
    "LocalMethod",
    "LocalScorer",
    "LocalScores",
    "MatchEvidence",
    "MatchMethod",
    "PatchMethod",
    "PatchScorer",
    "PatchSource",
    "QueryFeatures",
    "RansacMethod",
    "RerankMethod",
    "RerankedHit",
    "SiftScorer",
    "VerificationConfig",
    "VladScorer",
    "fuse",
    "match_descriptors",
    "normalise_global",
    "normalise_local",
    "patch_similarity",
    "rank_fused",
    "select_patches",
    "verify_geometry",
]
