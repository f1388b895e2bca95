"""Reading stored vectors back from the vector store, in chunks the Milvus query limit allows.

Uses ``MilvusVectorStore.get_vectors`` (ids -> vectors); analysis and relabelling need the vectors that
are actually searched, not a fresh embedding that could differ (another decode, another model file).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from retrieval_core.index.milvus_store import MilvusVectorStore
from retrieval_core.index.vector_index import integer_id

_QUERY_CHUNK = 1000  # well under Milvus's 16384 rows per query


def stored_vectors(store: MilvusVectorStore, image_ids: Sequence[int]) -> dict[int, np.ndarray]:
    """``{image id: vector}`` for the ids present in the store."""
    found: dict[int, np.ndarray] = {}
    ids = [int(i) for i in image_ids]
    for start in range(0, len(ids), _QUERY_CHUNK):
        chunk = store.get_vectors(ids[start : start + _QUERY_CHUNK])
        found.update((integer_id(key), vector) for key, vector in chunk.items())
    return found
