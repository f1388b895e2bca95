"""``LocalBlobStore``: keys are files under a root folder, written with ``atomic_write`` (temp + rename).

The layout on disk is exactly the key (``root/a/b/c.npz``), so a folder written before this layer existed
reads the same, and a shared volume (docker volume, RWX PersistentVolumeClaim) shares it between machines.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator
from pathlib import Path

from retrieval_core.atomic import atomic_write
from retrieval_core.storage.blob_store import check_key, check_prefix

__all__ = ["LocalBlobStore"]


class LocalBlobStore:
    """Files under ``root``; temp files of unfinished writes (``.<name>.*.tmp``) are never listed."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def path(self, key: str) -> Path:
        """The file that holds ``key``."""
        return self.root / check_key(key)

    def get(self, key: str) -> bytes:
        try:
            return self.path(key).read_bytes()
        except (FileNotFoundError, NotADirectoryError):
            raise KeyError(key) from None

    def get_many(self, keys: Iterable[str]) -> dict[str, bytes]:
        found: dict[str, bytes] = {}
        for key in keys:
            with contextlib.suppress(KeyError):
                found[key] = self.get(key)
        return found

    def put(self, key: str, data: bytes) -> None:
        atomic_write(self.path(key), lambda handle: handle.write(data))

    def exists(self, key: str) -> bool:
        return self.path(key).is_file()

    def delete(self, key: str) -> bool:
        try:
            self.path(key).unlink()
        except FileNotFoundError:
            return False
        return True

    def list(self, prefix: str = "") -> Iterator[str]:
        folder = self.root / check_key(check_prefix(prefix)[:-1]) if prefix else self.root
        if not folder.is_dir():
            return
        for path in folder.rglob("*"):
            if path.is_file() and not (path.name.startswith(".") and path.name.endswith(".tmp")):
                yield path.relative_to(self.root).as_posix()

    def describe(self, key: str) -> str:
        return str(self.path(key))

    def __repr__(self) -> str:
        return f"LocalBlobStore({str(self.root)!r})"
