"""The vector index protocol the search pipeline talks to: Milvus in the product, exact in evaluation.

Both return the same ``VectorHit`` rows, best first, so a pipeline built on one gives the same ranking on
the other up to ANN recall.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np

from retrieval_core.index.filters import SearchFilters

__all__ = ["CollectionMissingError", "ImageId", "VectorHit", "VectorIndex", "VectorLookup", "integer_id"]

ImageId = Hashable
"""An image's key: the catalogue's integer primary key, or a relpath in evaluation."""


def integer_id(key: ImageId) -> int:
    """The integer key ``key`` holds (a catalogue primary key, a row number): an int, or its decimal text
    as a file name gives it back. Anything else raises ``TypeError``, as ``int()`` would."""
    if isinstance(key, int | str):
        return int(key)
    raise TypeError(f"an integer image key is an int or its text, not {key!r}")


class CollectionMissingError(LookupError):
    """The index the search was pointed at does not exist (never created, or dropped)."""


@dataclass(frozen=True)
class VectorHit:
    """One search result: the image's key, its inner-product score and its landmark id (None: unknown)."""

    image_id: ImageId
    score: float
    landmark_id: int | None = None


@runtime_checkable
class VectorLookup(Protocol):
    """Stored vectors by key (VLAD re-ranking reads candidates' vectors this way)."""

    def get_vectors(self, image_ids: Sequence[ImageId]) -> Mapping[ImageId, np.ndarray]:
        """``{id: (D,) float32}`` for the ids that are stored; absent ids are left out."""
        ...


@runtime_checkable
class VectorIndex(VectorLookup, Protocol):
    """Top-k inner-product search over L2-normalised ``(D,)`` vectors."""

    dim: int

    def search(
        self,
        queries: np.ndarray,
        k: int = 10,
        *,
        exclude_ids: Sequence[ImageId] = (),
        filters: SearchFilters | None = None,
    ) -> list[list[VectorHit]]:
        """``(Q, D)`` float32 queries -> per query at most ``k`` hits, best first.

        ``exclude_ids`` are never returned (a query that is itself in the index); ``filters`` (landmark,
        capture date, radius) are applied before the top-k is taken: the best k matching images come back.
        """
        ...
