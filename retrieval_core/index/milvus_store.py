"""Approximate nearest-neighbour search over image descriptors in Milvus.

One collection holds the vectors of one embedding model version, keyed by the image's primary key, so
re-indexing an image overwrites it (upsert) and a new model version never mixes with the old one. The same
class talks to a Milvus Lite server, Milvus standalone or a cluster: only the URI differs.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime

import numpy as np
from pymilvus import DataType, MilvusClient
from pymilvus.exceptions import MilvusException

from retrieval_core.index.filters import UNKNOWN_TIME, epoch_seconds, unit_sphere
from retrieval_core.index.protocol import CollectionMissingError, ImageId, VectorHit

__all__ = [
    "FILTER_FIELDS",
    "HnswParams",
    "MilvusVectorStore",
    "OutdatedCollectionError",
    "PhotoScalars",
    "VectorHit",
]

FILTER_FIELDS = ("taken_at", "gx", "gy", "gz")
"""Scalar fields the search filters read (``retrieval_core.index.filters``), next to ``landmark_id``."""


class OutdatedCollectionError(RuntimeError):
    """The collection predates the filter fields: date and place filters need it rebuilt."""


@dataclass(frozen=True)
class PhotoScalars:
    """What filters need of a photo besides its landmark: EXIF capture time and position (None: unknown)."""

    taken_at: datetime | None = None
    latitude: float | None = None
    longitude: float | None = None

    def fields(self) -> dict[str, float | int]:
        x, y, z = (
            (0.0, 0.0, 0.0)
            if self.latitude is None or self.longitude is None
            else unit_sphere(self.latitude, self.longitude)
        )
        taken = UNKNOWN_TIME if self.taken_at is None else epoch_seconds(self.taken_at)
        return {"taken_at": taken, "gx": x, "gy": y, "gz": z}


logger = logging.getLogger(__name__)
_COLLECTION_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,254}$")


@dataclass(frozen=True)
class HnswParams:
    """HNSW graph parameters (Milvus defaults are M=16, efConstruction=200).

    M: links per node (memory vs recall); ef_construction: build-time beam; ef_search: query-time beam,
    raised to at least the requested top-k because HNSW cannot return more than ef results.
    """

    m: int = 16
    ef_construction: int = 200
    ef_search: int = 128


class MilvusVectorStore:
    """A Milvus collection of L2-normalised vectors searched by inner product (= cosine).

    Fields: ``id`` (INT64 primary key = image id), ``landmark_id`` (INT64, -1 when unknown), the filter
    fields ``taken_at`` (INT64) and ``gx, gy, gz`` (DOUBLE) described in ``retrieval_core.index.filters``,
    and ``vector`` (FLOAT_VECTOR of ``dim``). A collection created before the filter fields existed still
    serves unfiltered searches; ``ensure_collection`` notices it (``outdated``), upserts then write only
    the fields it has, and a filtered search raises ``OutdatedCollectionError`` (rebuild it to filter).
    """

    def __init__(
        self,
        uri: str,
        collection: str,
        dim: int,
        *,
        hnsw: HnswParams | None = None,
        token: str = "",
        timeout: float | None = 30.0,
    ) -> None:
        if not _COLLECTION_NAME.match(collection):
            raise ValueError(f"invalid Milvus collection name {collection!r}: use letters, digits and _")
        self.uri = uri
        self.collection = collection
        self.dim = dim
        self.hnsw = hnsw or HnswParams()
        self.outdated = False
        self._client = MilvusClient(uri=uri, token=token, timeout=timeout)

    def ensure_collection(self) -> None:
        """Create the collection with its HNSW index if missing, and make sure it is loaded."""
        if self._client.has_collection(self.collection):
            self._check_dim()
            self._client.load_collection(self.collection)
            return
        schema = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=False)
        schema.add_field("id", DataType.INT64, is_primary=True)
        schema.add_field("landmark_id", DataType.INT64)
        schema.add_field("taken_at", DataType.INT64)
        for axis in ("gx", "gy", "gz"):
            schema.add_field(axis, DataType.DOUBLE)
        schema.add_field("vector", DataType.FLOAT_VECTOR, dim=self.dim)
        index_params = self._client.prepare_index_params()
        index_params.add_index(
            field_name="vector",
            index_type="HNSW",
            metric_type="IP",
            params={"M": self.hnsw.m, "efConstruction": self.hnsw.ef_construction},
        )
        try:
            self._client.create_collection(self.collection, schema=schema, index_params=index_params)
        except MilvusException:
            if not self._client.has_collection(self.collection):  # not a lost race with another process
                raise
            self._check_dim()
        self._client.load_collection(self.collection)
        self.outdated = False

    def _check_dim(self) -> None:
        fields = self._client.describe_collection(self.collection)["fields"]
        missing = set(FILTER_FIELDS) - {f["name"] for f in fields}
        self.outdated = bool(missing)
        if missing:
            logger.warning(
                "Milvus collection %r predates the filter fields (%s): unfiltered search works, date and "
                "place filters need it rebuilt (python manage.py rebuild_index)",
                self.collection,
                ", ".join(sorted(missing)),
            )
        vector = next(f for f in fields if f["name"] == "vector")
        existing = int(vector["params"]["dim"])
        if existing != self.dim:
            raise ValueError(
                f"collection {self.collection!r} holds {existing}-d vectors, this model makes {self.dim}-d"
            )

    def upsert(
        self,
        image_ids: Sequence[int],
        vectors: np.ndarray,
        landmark_ids: Sequence[int | None],
        scalars: Sequence[PhotoScalars] | None = None,
    ) -> int:
        """Insert or overwrite vectors (N, dim) by image id with their filter fields (``scalars``: one per
        image, default unknown); a row is replaced whole, so pass the current scalars on a relabel.
        Returns the number written."""
        vectors = np.asarray(vectors, dtype=np.float32)
        if vectors.ndim != 2 or vectors.shape[1] != self.dim:
            raise ValueError(f"expected vectors of shape (N, {self.dim}), got {vectors.shape}")
        scalars = [PhotoScalars()] * len(image_ids) if scalars is None else scalars
        if not (len(image_ids) == len(landmark_ids) == len(vectors) == len(scalars)):
            raise ValueError("image_ids, vectors, landmark_ids and scalars must have the same length")
        if len(image_ids) == 0:
            return 0
        rows = [
            {
                "id": int(i),
                "landmark_id": -1 if lm is None else int(lm),
                **({} if self.outdated else extra.fields()),
                "vector": v.tolist(),
            }
            for i, lm, v, extra in zip(image_ids, landmark_ids, vectors, scalars, strict=True)
        ]
        result = self._client.upsert(self.collection, rows)
        return int(result.get("upsert_count", len(rows)))

    def delete(self, image_ids: Sequence[int]) -> None:
        """Remove vectors by image id (missing ids are ignored)."""
        if image_ids:
            self._client.delete(self.collection, ids=[int(i) for i in image_ids])

    def flush(self) -> None:
        """Seal growing segments so searches use the HNSW index instead of brute force.

        Unflushed rows are searched by brute force (PARTS.md measured 0.5 s per query at 20k rows), so
        writers flush after each batch.
        """
        self._client.flush(self.collection)

    def search(
        self,
        queries: np.ndarray,
        k: int = 10,
        *,
        landmark_id: int | None = None,
        exclude_ids: Sequence[ImageId] = (),
        filter_expression: str = "",
    ) -> list[list[VectorHit]]:
        """Top-k neighbours of each query (Q, dim), best first, optionally within one landmark.

        Makes no has/describe/load call: a collection that does not exist raises
        ``CollectionMissingError`` (collections are created at indexing and activation, not by searches).
        """
        queries = np.atleast_2d(np.asarray(queries, dtype=np.float32))
        if queries.shape[1] != self.dim:
            raise ValueError(f"expected queries of shape (Q, {self.dim}), got {queries.shape}")
        clauses = [f"({filter_expression})"] if filter_expression else []
        if landmark_id is not None:
            clauses.append(f"landmark_id == {int(landmark_id)}")
        if exclude_ids:
            clauses.append(f"id not in [{', '.join(str(int(i)) for i in exclude_ids)}]")  # type: ignore[call-overload]
        with (
            _missing_collection_raises(self.collection),
            _outdated_raises(self.collection, filter_expression),
        ):
            results = self._client.search(
                self.collection,
                data=queries.tolist(),
                limit=k,
                filter=" and ".join(clauses),
                output_fields=["landmark_id"],
                search_params={"metric_type": "IP", "params": {"ef": max(self.hnsw.ef_search, k)}},
            )
        return [
            [
                VectorHit(
                    image_id=int(hit["id"]),
                    score=float(hit["distance"]),
                    landmark_id=_landmark_or_none(hit["entity"].get("landmark_id")),
                )
                for hit in per_query
            ]
            for per_query in results
        ]

    def get_vectors(self, image_ids: Sequence[ImageId]) -> dict[ImageId, np.ndarray]:
        """Stored vectors by id (ids not in the collection are absent from the result)."""
        if not image_ids:
            return {}
        with _missing_collection_raises(self.collection):
            rows = self._client.query(
                self.collection,
                ids=[int(i) for i in image_ids],  # type: ignore[call-overload]
                output_fields=["id", "vector"],
            )
        return {int(row["id"]): np.asarray(row["vector"], dtype=np.float32) for row in rows}

    def count(self) -> int:
        """Number of vectors in the collection (0 if it does not exist)."""
        if not self._client.has_collection(self.collection):
            return 0
        rows = self._client.query(self.collection, filter="", output_fields=["count(*)"])
        return int(rows[0]["count(*)"])

    def exists(self) -> bool:
        return bool(self._client.has_collection(self.collection))

    def drop(self) -> None:
        """Delete the whole collection (used to retire an old model version)."""
        if self._client.has_collection(self.collection):
            self._client.drop_collection(self.collection)

    def close(self) -> None:
        self._client.close()


@contextmanager
def _missing_collection_raises(collection: str) -> Iterator[None]:
    """Turn Milvus's "collection not found" into ``CollectionMissingError`` (other errors pass through)."""
    try:
        yield
    except MilvusException as error:
        message = str(error).lower()
        if (
            getattr(error, "code", None) == 100
            or "collection not found" in message
            or "does not exist" in message
        ):
            raise CollectionMissingError(f"the Milvus collection {collection!r} does not exist") from error
        raise


@contextmanager
def _outdated_raises(collection: str, expression: str) -> Iterator[None]:
    """A filter on a field the collection lacks (made before the filter fields): the operator rebuilds it."""
    try:
        yield
    except MilvusException as error:
        message = str(error)
        if expression and any(name in message for name in FILTER_FIELDS):
            raise OutdatedCollectionError(
                f"the Milvus collection {collection!r} was created before date and place filters existed: "
                "rebuild it with `python manage.py rebuild_index` to filter (unfiltered search still works)"
            ) from error
        raise


def _landmark_or_none(value: int | None) -> int | None:
    """Milvus stores an unknown landmark as -1."""
    return None if value is None or int(value) < 0 else int(value)
