"""The library's blob stores, from the storage settings (STORAGE_BACKEND, FEATURES_ROOT, AWS_*, ...).

One store per configuration and folder per process, so the S3 client and its connection pool are reused by
every request; a test that overrides the settings gets a store of its own.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from django.conf import settings

from retrieval_core.storage import BlobStore, S3Config, StorageConfig, open_blob_store


def storage_config() -> StorageConfig:
    """Local files under FEATURES_ROOT, or the S3 bucket of the AWS_* settings under STORAGE_PREFIX."""
    if settings.STORAGE_BACKEND != "s3":
        return StorageConfig(root=Path(settings.FEATURES_ROOT))
    return StorageConfig(
        backend="s3",
        root=Path(settings.FEATURES_ROOT),
        cache_root=Path(settings.STORAGE_CACHE_DIR) if settings.STORAGE_CACHE_DIR else None,
        s3=S3Config(
            bucket=settings.AWS_STORAGE_BUCKET_NAME,
            prefix=settings.STORAGE_PREFIX,
            endpoint_url=settings.AWS_S3_ENDPOINT_URL,
            region=settings.AWS_S3_REGION_NAME,
            access_key_id=settings.AWS_ACCESS_KEY_ID,
            secret_access_key=settings.AWS_SECRET_ACCESS_KEY,
            parallel_gets=settings.STORAGE_PARALLEL_GETS,
            create_bucket=settings.STORAGE_CREATE_BUCKET,
        ),
    )


def feature_blobs(folder: str) -> BlobStore:
    """The store of per-image features in ``folder`` (``sift``, ``patches``)."""
    return _open(storage_config(), folder)


@lru_cache(maxsize=16)
def _open(config: StorageConfig, folder: str) -> BlobStore:
    return open_blob_store(config, folder)
