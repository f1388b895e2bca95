"""Approximate nearest-neighbour search over image descriptors in Milvus.

One collection holds the vectors of one embedding model version, keyed by the image's primary key, so
re-indexing an image overwrites it (upsert) and a new model version never mixes with the old one. The same
class talks to a Milvus Lite server, Milvus standalone or a cluster: only the URI differs.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import datetime
from functools import partial
from typing import Any, TypeVar

import numpy as np
from pymilvus import DataType, MilvusClient
from pymilvus.exceptions import MilvusException
from pymilvus.milvus_client.index import IndexParams

from retrieval_core.index.filters import GEO_FIELDS, UNKNOWN_TIME, SearchFilters, epoch_seconds, unit_sphere
from retrieval_core.index.vector_index import CollectionMissingError, ImageId, VectorHit

__all__ = [
    "FILTER_FIELDS",
    "INDEX_TYPES",
    "MAX_TOP_K",
    "AnnIndexParams",
    "HnswParams",
    "MilvusVectorStore",
    "OutdatedCollectionError",
    "PhotoScalars",
    "VectorHit",
]

MAX_TOP_K = 16384
"""The largest limit a Milvus search accepts."""
FILTER_FIELDS = ("taken_at", *GEO_FIELDS)
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
_T = TypeVar("_T")
_COLLECTION_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,254}$")


INDEX_TYPES = ("HNSW", "HNSW_SQ", "IVF_FLAT", "IVF_SQ8", "IVF_PQ", "FLAT")
"""Vector index types the store can build. Milvus Lite 3.2 builds all but ``IVF_PQ`` (it has no product
quantisation); Milvus standalone and cluster build all of them."""


@dataclass(frozen=True)
class AnnIndexParams:
    """Which ANN index the collection gets and how searches walk it (chosen by ``bench/ann_scale.py``).

    index_type: one of ``INDEX_TYPES``. ``FLAT`` is exact search (no build parameters).
    m, ef_construction: HNSW/HNSW_SQ graph links per node (memory vs recall) and build-time beam.
    ef_search: HNSW/HNSW_SQ query-time beam, raised to at least the requested top-k because HNSW cannot
        return more than ef results.
    nlist, nprobe: IVF_* cells built by k-means and cells scanned per query.
    pq_m: IVF_PQ sub-quantisers (the dimension must be a multiple of it); 8 bits each.
    Defaults (docs/benchmarks/index.md, "ANN at scale"): HNSW M=16, efConstruction=200, ef=256: recall@100
    0.9996 on 100k served 1280-d vectors in Milvus standalone (ef=128: 0.9984). IVF_FLAT nlist=1024
    nprobe=32 did as well at 100k and 1M but is no default: Milvus Lite builds one index per segment and
    clamps nlist to its rows, so a small collection's probes would hold fewer than the k vectors a search
    asks for.
    """

    index_type: str = "HNSW"
    m: int = 16
    ef_construction: int = 200
    ef_search: int = 256
    nlist: int = 1024
    nprobe: int = 32
    pq_m: int = 16

    def __post_init__(self) -> None:
        if self.index_type not in INDEX_TYPES:
            known = ", ".join(INDEX_TYPES)
            raise ValueError(f"unknown Milvus index type {self.index_type!r}: use one of {known}")
        numbers = {
            "m": self.m, "ef_construction": self.ef_construction, "ef_search": self.ef_search,
            "nlist": self.nlist, "nprobe": self.nprobe, "pq_m": self.pq_m,
        }
        bad = [f"{name}={value}" for name, value in numbers.items() if value < 1]
        if bad:
            raise ValueError(f"index parameters must be positive, got {', '.join(bad)}")

    def build_params(self) -> dict[str, int | str]:
        """Milvus ``create_index`` parameters of this index type."""
        if self.index_type in ("HNSW", "HNSW_SQ"):
            graph: dict[str, int | str] = {"M": self.m, "efConstruction": self.ef_construction}
            return graph | ({"sq_type": "SQ8"} if self.index_type == "HNSW_SQ" else {})
        if self.index_type == "IVF_PQ":
            return {"nlist": self.nlist, "m": self.pq_m, "nbits": 8}
        if self.index_type.startswith("IVF"):
            return {"nlist": self.nlist}
        return {}

    def search_params(self, k: int) -> dict[str, int]:
        """Milvus ``search`` parameters for a top-``k`` query."""
        if self.index_type in ("HNSW", "HNSW_SQ"):
            return {"ef": max(self.ef_search, k)}
        if self.index_type.startswith("IVF"):
            return {"nprobe": min(self.nprobe, self.nlist)}
        return {}

    def describe(self) -> str:
        """Short label, e.g. ``HNSW M=16 efC=200 ef=128``."""
        if self.index_type in ("HNSW", "HNSW_SQ"):
            return f"{self.index_type} M={self.m} efC={self.ef_construction} ef={self.ef_search}"
        if self.index_type == "IVF_PQ":
            return f"IVF_PQ nlist={self.nlist} m={self.pq_m} nprobe={self.nprobe}"
        if self.index_type.startswith("IVF"):
            return f"{self.index_type} nlist={self.nlist} nprobe={self.nprobe}"
        return self.index_type


HnswParams = AnnIndexParams
"""Former name of `AnnIndexParams` (HNSW was the only index type)."""


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
        index: AnnIndexParams | None = None,
        token: str = "",
        timeout: float | None = 30.0,
    ) -> None:
        if not _COLLECTION_NAME.match(collection):
            raise ValueError(f"invalid Milvus collection name {collection!r}: use letters, digits and _")
        self.uri = uri
        self.collection = collection
        self.dim = dim
        self.index = index or AnnIndexParams()
        self.served_index = self.index
        """The index the collection really has (an older collection keeps the one it was built with until
        `rebuild_index`); searches use its parameters."""
        self.outdated = False
        self._client = MilvusClient(uri=uri, token=token, timeout=timeout)

    def ensure_collection(self) -> None:
        """Create the collection with its configured ANN index if missing, and make sure it is loaded."""
        if self._client.has_collection(self.collection):
            self._check_dim()
            self._check_index()
            self._client.load_collection(self.collection)
            return
        schema = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=False)
        schema.add_field("id", DataType.INT64, is_primary=True)
        schema.add_field("landmark_id", DataType.INT64)
        schema.add_field("taken_at", DataType.INT64)
        for axis in ("gx", "gy", "gz"):
            schema.add_field(axis, DataType.DOUBLE)
        schema.add_field("vector", DataType.FLOAT_VECTOR, dim=self.dim)
        try:
            self._client.create_collection(self.collection, schema=schema, index_params=self._index_params())
        except MilvusException:
            if not self._client.has_collection(self.collection):  # not a lost race with another process
                raise
            self._check_dim()
            self._check_index()
        self._client.load_collection(self.collection)
        self.outdated = False

    def _index_params(self) -> IndexParams:
        """The vector field's index as ``create_index`` wants it.

        The build parameters go twice: flattened (how pymilvus 3 sends them, read by Milvus standalone)
        and as one JSON ``params`` entry, the only form Milvus Lite 3.2 reads (it silently drops the
        flattened keys and builds with its defaults). Milvus standalone accepts both forms.
        """
        build = self.index.build_params()
        index_params = self._client.prepare_index_params()
        index_params.add_index(
            field_name="vector",
            index_type=self.index.index_type,
            metric_type="IP",
            params={**build, "params": build} if build else {},
        )
        return index_params

    def rebuild_index(self) -> None:
        """Replace the collection's vector index with the configured one (after MILVUS_INDEX_* changed),
        without re-inserting vectors; blocks until the collection is loaded with the new index."""
        with _missing_collection_raises(self.collection):
            self._client.release_collection(self.collection)
            for name in self._client.list_indexes(self.collection, field_name="vector"):
                self._client.drop_index(self.collection, name)
            try:
                self._client.create_index(self.collection, self._index_params())
            except MilvusException:
                # Milvus Lite builds while the call is open; a build of minutes can outlast the gRPC
                # keep-alive, and pymilvus's retry then finds the index it had asked for already there.
                if self.describe_index().get("index_type") != self.index.index_type:
                    raise
            self._client.load_collection(self.collection)
        self.served_index = self.index

    def describe_index(self) -> dict[str, str]:
        """The vector index as Milvus reports it (``index_type``, build parameters, as strings)."""
        names = self._client.list_indexes(self.collection, field_name="vector")
        if not names:
            return {}
        described = self._client.describe_index(self.collection, names[0])
        nested = described.pop("params", None)  # Milvus Lite reports the JSON it stored
        flat = {key: str(value) for key, value in described.items()}
        if isinstance(nested, str):
            nested = json.loads(nested)
        if isinstance(nested, dict):
            flat.update({key: str(value) for key, value in nested.items()})
        return flat

    def _check_index(self) -> None:
        """An existing collection keeps its index: searches use its type, and a mismatch is logged."""
        served = self.describe_index().get("index_type", self.index.index_type)
        if served not in INDEX_TYPES:  # e.g. AUTOINDEX: searched without type-specific parameters
            served = "FLAT"
        self.served_index = replace(self.index, index_type=served)
        if served != self.index.index_type:
            logger.warning(
                "Milvus collection %r has a %s index, configured is %s: searches use the %s parameters "
                "until the index is rebuilt (MilvusVectorStore.rebuild_index)",
                self.collection, served, self.index.index_type, served,
            )

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
        """Seal growing segments so searches use the ANN index instead of brute force.

        Unflushed rows are searched by brute force (~0.5 s per query at 20k rows on Milvus Lite), so writers
        flush after each batch.
        """
        self._client.flush(self.collection)

    def search(
        self,
        queries: np.ndarray,
        k: int = 10,
        *,
        landmark_id: int | None = None,
        exclude_ids: Sequence[ImageId] = (),
        filters: SearchFilters | None = None,
    ) -> list[list[VectorHit]]:
        """Top-k neighbours of each query (Q, dim), best first, optionally within one landmark.

        ``filters`` go to Milvus as an expression; a radius goes as the box around it, and the hits
        outside the radius itself are dropped here, searching again with a larger limit (up to
        ``MAX_TOP_K``) while a query has fewer than k hits left and Milvus may hold more.
        Makes no has/describe/load call: a collection that does not exist raises
        ``CollectionMissingError`` (collections are created at indexing and activation, not by searches).
        """
        queries = np.atleast_2d(np.asarray(queries, dtype=np.float32))
        if queries.shape[1] != self.dim:
            raise ValueError(f"expected queries of shape (Q, {self.dim}), got {queries.shape}")
        expression = filters.expression() if filters else ""
        clauses = [f"({expression})"] if expression else []
        if landmark_id is not None:
            clauses.append(f"landmark_id == {int(landmark_id)}")
        if exclude_ids:
            clauses.append(f"id not in [{', '.join(str(int(i)) for i in exclude_ids)}]")  # type: ignore[call-overload]
        near = filters.near if filters else None
        limit = k if near is None else min(2 * k, MAX_TOP_K)
        while True:
            with (
                _missing_collection_raises(self.collection),
                _outdated_raises(self.collection, expression),
            ):
                results = self._loaded(
                    partial(
                        self._client.search,
                        self.collection,
                        data=queries.tolist(),
                        limit=limit,
                        filter=" and ".join(clauses),
                        output_fields=["landmark_id", *(GEO_FIELDS if near else ())],
                        search_params={"metric_type": "IP", "params": self.served_index.search_params(limit)},
                    )
                )
            kept = [
                [hit for hit in per_query if near is None or near.contains(*_position(hit["entity"]))]
                for per_query in results
            ]
            short = any(len(hit) < k and len(got) == limit for hit, got in zip(kept, results, strict=True))
            if not short or limit >= MAX_TOP_K:
                break
            limit = min(4 * limit, MAX_TOP_K)
        return [
            [
                VectorHit(
                    image_id=int(hit["id"]),
                    score=float(hit["distance"]),
                    landmark_id=_landmark_or_none(hit["entity"].get("landmark_id")),
                )
                for hit in per_query[:k]
            ]
            for per_query in kept
        ]

    def get_vectors(self, image_ids: Sequence[ImageId]) -> dict[ImageId, np.ndarray]:
        """Stored vectors by id (ids not in the collection are absent from the result)."""
        if not image_ids:
            return {}
        with _missing_collection_raises(self.collection):

            def read() -> list[dict[str, Any]]:
                return self._client.query(
                    self.collection,
                    ids=[int(i) for i in image_ids],  # type: ignore[call-overload]
                    output_fields=["id", "vector"],
                )

            rows = self._loaded(read)
        return {int(row["id"]): np.asarray(row["vector"], dtype=np.float32) for row in rows}

    def count(self) -> int:
        """Number of vectors in the collection (0 if it does not exist)."""
        if not self._client.has_collection(self.collection):
            return 0
        count = partial(self._client.query, self.collection, filter="", output_fields=["count(*)"])
        rows = self._loaded(count)
        return int(rows[0]["count(*)"])

    def _loaded(self, read: Callable[[], _T]) -> _T:
        """``read()``, loading the collection and reading once more if the server holds it unloaded.

        A Milvus Lite server that restarts comes back with every collection released: without this, each
        search (which makes no load call of its own) failed with 503 until another process happened to
        load the collection, e.g. a worker indexing an upload (bench/soak.py found it)."""
        try:
            return read()
        except MilvusException as error:
            if not _not_loaded(error):
                raise
            logger.warning("Milvus collection %s not loaded (a server restart?): loading it", self.collection)
            self._client.load_collection(self.collection)
            return read()

    def exists(self) -> bool:
        return bool(self._client.has_collection(self.collection))

    def drop(self) -> None:
        """Delete the whole collection (used to retire an old model version)."""
        if self._client.has_collection(self.collection):
            self._client.drop_collection(self.collection)

    def close(self) -> None:
        self._client.close()


def _not_loaded(error: MilvusException) -> bool:
    """Milvus's "collection not loaded" (code 101; Milvus Lite says the collection "is in state
    'released'")."""
    message = str(error).lower()
    return getattr(error, "code", None) == 101 or "not loaded" in message or "state 'released'" in message


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


def _position(entity: dict[str, float]) -> tuple[float, float, float]:
    x, y, z = (float(entity[name]) for name in GEO_FIELDS)
    return x, y, z


def _landmark_or_none(value: int | None) -> int | None:
    """Milvus stores an unknown landmark as -1."""
    return None if value is None or int(value) < 0 else int(value)
