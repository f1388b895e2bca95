"""Where bytes that several processes read live: local files (default) or an S3-compatible object store.

``BlobStore`` (blob_store.py) is the one interface; ``LocalBlobStore`` (local.py) and ``S3BlobStore`` (s3.py)
implement it, ``open_blob_store`` (config.py) picks one from a frozen ``StorageConfig``, with a
``CachedBlobStore`` (cached.py) in front of S3 when a local cache folder is configured.
"""

from retrieval_core.storage.blob_store import BlobStore, check_key
from retrieval_core.storage.cached import CachedBlobStore
from retrieval_core.storage.config import StorageConfig, open_blob_store
from retrieval_core.storage.local import LocalBlobStore
from retrieval_core.storage.s3 import S3BlobStore, S3Config

__all__ = [
    "BlobStore",
    "CachedBlobStore",
    "LocalBlobStore",
    "S3BlobStore",
    "S3Config",
    "StorageConfig",
    "check_key",
    "open_blob_store",
]
