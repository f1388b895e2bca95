"""Settings of one search, passed in as a frozen dataclass (nothing is read from the environment here)."""

from __future__ import annotations

from dataclasses import dataclass, field

from retrieval_core.rerank.fusion import FusionConfig
from retrieval_core.search.decode import DecodePolicy
from retrieval_core.search.recognition import RecognitionConfig

__all__ = ["SearchConfig"]


@dataclass(frozen=True)
class SearchConfig:
    """k: results returned; fusion: weight, re-rank depth (``fusion.top_k``) and local-score mapping;
    patch_top_n: CNN patches kept from the query's forward pass (patch re-ranking only);
    decode: how the photo is decoded;
    verified_expansion / verified_expansion_inliers: average the query with the stored vectors of up to n
    candidates verified with at least that many inliers, and fuse with the cosines to that vector (0 = off);
    recognition: how the ranking's landmark is named (once per search; ``fusion.landmark_first`` reuses it).

    These defaults are building blocks for tests and experiments; what is served is
    ``retrieval_core.search.served.SERVED``."""

    k: int = 10
    fusion: FusionConfig = field(default_factory=FusionConfig)
    patch_top_n: int = 32
    decode: DecodePolicy = field(default_factory=DecodePolicy)
    verified_expansion: int = 0
    verified_expansion_inliers: int = 15
    recognition: RecognitionConfig = field(default_factory=RecognitionConfig)

    def __post_init__(self) -> None:
        if self.k <= 0:
            raise ValueError(f"k must be positive, got {self.k}")
        if self.verified_expansion < 0 or self.verified_expansion_inliers < 1:
            raise ValueError("verified_expansion must be >= 0 and verified_expansion_inliers >= 1")
        if self.patch_top_n <= 0:
            raise ValueError(f"patch_top_n must be positive, got {self.patch_top_n}")
