"""CNN patch re-ranking: set-to-set similarity of the query's and each candidate's stored patches.

The query's patches come from the same forward pass as its global vector (``QueryFeatures.patches``).
"""

from __future__ import annotations

import time
from collections.abc import Hashable, Mapping, Sequence
from typing import Protocol

import numpy as np

from retrieval_core.features.sift import SiftConfig
from retrieval_core.rerank.patches import PatchMethod, patch_similarity
from retrieval_core.rerank.scorer import LocalScores, QueryFeatures, RerankMethod, missing_ids

__all__ = ["PatchScorer", "PatchSource"]


class PatchSource(Protocol):
    """Stored ``(n, D)`` patch sets by image id; absent ids are left out."""

    def load_many(self, image_ids: Sequence[Hashable]) -> Mapping[Hashable, np.ndarray]: ...


class PatchScorer:
    """``patch_similarity`` per candidate (NaN where either side has no patches)."""

    method: RerankMethod = "patches"
    needs_patches = True
    query_sift: SiftConfig | None = None

    def __init__(self, patches: PatchSource, similarity: PatchMethod = "asymmetric") -> None:
        self.patches = patches
        self.similarity = similarity

    def score(self, query: QueryFeatures, candidate_ids: Sequence[Hashable]) -> LocalScores:
        raw = np.full(len(candidate_ids), np.nan)
        timings: dict[str, float] = {}
        if query.patches is not None and len(query.patches):
            mine = np.asarray(query.patches, np.float32)
            t = time.perf_counter()
            stored = self.patches.load_many(list(candidate_ids))
            timings["load"] = time.perf_counter() - t
            for position, image_id in enumerate(candidate_ids):
                theirs = stored.get(image_id)
                if theirs is not None and len(theirs):
                    raw[position] = patch_similarity(mine, np.asarray(theirs, np.float32), self.similarity)
        return LocalScores(raw, None, timings, missing_ids(candidate_ids, raw))
