"""One search pipeline for serving, tuning, evaluation and benchmarks (see ``pipeline``)."""

from retrieval_core.search.config import SearchConfig
from retrieval_core.search.decode import DecodePolicy, decode, index_local_features
from retrieval_core.search.pipeline import (
    Embedder,
    ScoredCandidates,
    SearchPipeline,
    SearchResult,
    elapsed_ms,
    rank_candidates,
)
from retrieval_core.search.tuning import DEFAULT_GRID, tune_fusion_weight

__all__ = [
    "DEFAULT_GRID",
    "DecodePolicy",
    "Embedder",
    "ScoredCandidates",
    "SearchConfig",
    "SearchPipeline",
    "SearchResult",
    "decode",
    "elapsed_ms",
    "index_local_features",
    "rank_candidates",
    "tune_fusion_weight",
]
