"""VLAD re-ranking: cosine between the query's VLAD and each candidate's stored one.

Index VLADs are computed once at index time (`VladEncoder.encode`) and read back by id through a
``VectorLookup`` (the VLAD Milvus collection in the product, an in-memory index in evaluation); only the
query's VLAD is computed per search.
"""

from __future__ import annotations

import time
from collections.abc import Hashable, Sequence

import numpy as np

from retrieval_core.features.sift import SiftConfig
from retrieval_core.features.vlad import VladEncoder
from retrieval_core.index.vector_index import VectorLookup
from retrieval_core.rerank.scorer import LocalScores, QueryFeatures, RerankMethod, missing_ids
from retrieval_core.rerank.sift_scorer import query_local_features

__all__ = ["VladScorer"]


class VladScorer:
    """Cosine of (optionally PCA-whitened) VLADs; NaN for candidates without a stored VLAD."""

    method: RerankMethod = "vlad"
    needs_patches = False

    def __init__(self, encoder: VladEncoder, vectors: VectorLookup, query_sift: SiftConfig) -> None:
        self.encoder = encoder
        self.vectors = vectors
        self.query_sift = query_sift

    def score(self, query: QueryFeatures, candidate_ids: Sequence[Hashable]) -> LocalScores:
        t = time.perf_counter()
        features = query_local_features(query, self.query_sift)
        timings = {"query_features": time.perf_counter() - t}
        raw = np.full(len(candidate_ids), np.nan)
        if len(features):
            mine = self.encoder.encode(features.descriptors)
            t = time.perf_counter()
            stored = self.vectors.get_vectors(list(candidate_ids))
            timings["load"] = time.perf_counter() - t
            for position, image_id in enumerate(candidate_ids):
                theirs = stored.get(image_id)
                if theirs is not None and np.any(theirs):
                    raw[position] = float(mine @ np.asarray(theirs, np.float32))
        return LocalScores(raw, None, timings, missing_ids(candidate_ids, raw))
