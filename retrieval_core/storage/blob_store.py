"""The ``BlobStore`` protocol: bytes by key, the same for a local folder and an object-store bucket.

Keys are relative, ``/``-separated names (``sift/<key>/<shard>/<id>.npz``) without ``.`` or ``..`` parts, so
one key names the same object under every backend and can never escape the store's root.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Protocol, runtime_checkable

__all__ = ["BlobStore", "check_key", "check_prefix"]


@runtime_checkable
class BlobStore(Protocol):
    """Bytes by key. A reader never sees half an object: ``put`` publishes whole objects only."""

    def get(self, key: str) -> bytes:
        """The bytes stored under ``key``; ``KeyError`` if there are none."""
        ...

    def get_many(self, keys: Iterable[str]) -> dict[str, bytes]:
        """The bytes of every key that exists (absent keys are left out). Remote stores fetch concurrently,
        so loading 100 re-ranking candidates costs a few round trips, not 100."""
        ...

    def put(self, key: str, data: bytes) -> None:
        """Store ``data`` under ``key``, replacing what was there, atomically."""
        ...

    def exists(self, key: str) -> bool: ...

    def delete(self, key: str) -> bool:
        """Remove ``key``; returns whether it was there."""
        ...

    def list(self, prefix: str = "") -> Iterator[str]:
        """Keys under ``prefix`` (a folder-like prefix ending in ``/``, or ``""`` for all), in no order."""
        ...

    def describe(self, key: str) -> str:
        """Where ``key`` lives (a file path or ``s3://bucket/...``), for error messages and logs."""
        ...


def check_key(key: str) -> str:
    """``key`` if it is a ``/``-separated name without empty, ``.`` or ``..`` parts, else ValueError."""
    parts = key.split("/")
    if not key or key.startswith("/") or any(part in ("", ".", "..") for part in parts) or "\\" in key:
        raise ValueError(f"storage key must be a relative a/b/c name without '.' or '..' parts, got {key!r}")
    return key


def check_prefix(prefix: str) -> str:
    """``prefix`` if it is ``""`` or a valid key followed by ``/`` (a folder); else ValueError."""
    if prefix and not (prefix.endswith("/") and check_key(prefix[:-1])):
        raise ValueError(f"storage prefix must be '' or end with '/', got {prefix!r}")
    return prefix
