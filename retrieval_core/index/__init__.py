"""Vector indexes behind one protocol: the Milvus store (serving) and an exact in-memory index."""

from retrieval_core.index.exact import ExactIndex
from retrieval_core.index.vector_index import (
    CollectionMissingError,
    ImageId,
    VectorHit,
    VectorIndex,
    VectorLookup,
)

__all__ = ["CollectionMissingError", "ExactIndex", "ImageId", "VectorHit", "VectorIndex", "VectorLookup"]
