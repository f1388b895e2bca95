"""``CachedBlobStore``: a remote store (S3) read through a local folder, for the web servers' hot path.

A query reads its 100 candidates' local features; from an object store that is 100 GETs, whose client CPU
alone (~2 ms each with boto3) exceeds the budget of the load step (bench/feature_fetch.py). Candidates
repeat across queries, so after the first reads a local copy serves them at local-disk speed.

This is right only for objects that are never rewritten with other bytes under the same key, which holds
for per-image features: their key carries the extractor's settings and the image id, and extraction from
the same photo gives the same bytes. Writes and deletes from this process go to both; another process's
write leaves this cache stale until the file is deleted. The cache has no size bound: it holds at most
what the bucket holds (use a disk that fits, or none).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator

from retrieval_core.storage.blob_store import BlobStore
from retrieval_core.storage.local import LocalBlobStore

__all__ = ["CachedBlobStore"]

logger = logging.getLogger(__name__)


class CachedBlobStore:
    """``remote`` read through ``cache``: reads try the cache first and keep what they fetch."""

    def __init__(self, remote: BlobStore, cache: LocalBlobStore) -> None:
        self.remote = remote
        self.cache = cache

    def _keep(self, key: str, data: bytes) -> None:
        try:
            self.cache.put(key, data)
        except OSError as error:  # a full or read-only cache disk costs speed, never a read
            logger.warning("could not cache %s in %s: %s", self.remote.describe(key), self.cache.root, error)

    def get(self, key: str) -> bytes:
        try:
            return self.cache.get(key)
        except KeyError:
            data = self.remote.get(key)
            self._keep(key, data)
            return data

    def get_many(self, keys: Iterable[str]) -> dict[str, bytes]:
        wanted = list(dict.fromkeys(keys))
        found = self.cache.get_many(wanted)
        fetched = self.remote.get_many(key for key in wanted if key not in found)
        for key, data in fetched.items():
            self._keep(key, data)
        return {**found, **fetched}

    def put(self, key: str, data: bytes) -> None:
        self.remote.put(key, data)
        self._keep(key, data)

    def exists(self, key: str) -> bool:
        return self.remote.exists(key)

    def delete(self, key: str) -> bool:
        self.cache.delete(key)
        return self.remote.delete(key)

    def list(self, prefix: str = "") -> Iterator[str]:
        return self.remote.list(prefix)

    def describe(self, key: str) -> str:
        return self.remote.describe(key)

    def __repr__(self) -> str:
        return f"CachedBlobStore({self.remote!r} through {self.cache!r})"
