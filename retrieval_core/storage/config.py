"""``StorageConfig`` and ``open_blob_store``: one place that turns deployment settings into a ``BlobStore``.

The same folder name (``sift``, ``patches``) scopes both backends: ``root/sift`` on disk, or
``s3://bucket/<prefix>/sift/`` in the object store, so switching backends never changes a key.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal

from retrieval_core.storage.blob_store import BlobStore, check_key
from retrieval_core.storage.cached import CachedBlobStore
from retrieval_core.storage.local import LocalBlobStore
from retrieval_core.storage.s3 import S3BlobStore, S3Config

__all__ = ["StorageConfig", "open_blob_store"]


@dataclass(frozen=True)
class StorageConfig:
    """``backend="local"``: files under ``root``. ``backend="s3"``: objects as ``s3`` says (required then),
    read through a local copy under ``cache_root`` if one is given (per machine; see cached.py)."""

    backend: Literal["local", "s3"] = "local"
    root: Path = Path("var/features")
    s3: S3Config | None = None
    cache_root: Path | None = None

    def __post_init__(self) -> None:
        if self.backend not in ("local", "s3"):
            raise ValueError(f"storage backend must be local or s3, got {self.backend!r}")
        if self.backend == "s3" and (self.s3 is None or not self.s3.bucket):
            raise ValueError("storage backend s3 needs a bucket (AWS_STORAGE_BUCKET_NAME)")


def open_blob_store(config: StorageConfig, folder: str) -> BlobStore:
    """The store for ``folder`` (e.g. ``"sift"``) under the configured root or bucket prefix."""
    check_key(folder)
    if config.backend == "s3":
        assert config.s3 is not None  # checked in __post_init__
        prefix = "/".join(part for part in (config.s3.prefix.strip("/"), folder) if part)
        remote = S3BlobStore(replace(config.s3, prefix=prefix))
        if config.cache_root is None:
            return remote
        return CachedBlobStore(remote, LocalBlobStore(Path(config.cache_root) / folder))
    return LocalBlobStore(Path(config.root) / folder)
