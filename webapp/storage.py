"""The library's blob stores, from the storage settings (STORAGE_BACKEND, FEATURES_ROOT, AWS_*, ...): the
per-image features, and the files a process publishes whole for others to load (codebooks, checkpoints).

One store per configuration and folder per process, so the S3 client and its connection pool are reused by
every request; a test that overrides the settings gets a store of its own.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path, PurePosixPath

from django.conf import settings

from retrieval_core.atomic import atomic_write
from retrieval_core.storage import (
    BlobStore,
    CachedBlobStore,
    S3Config,
    StorageConfig,
    check_key,
    open_blob_store,
)


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
    """The store of ``folder``: per-image features (``sift``, ``patches``), codebooks, checkpoints."""
    return _open(storage_config(), folder)


@lru_cache(maxsize=16)
def _open(config: StorageConfig, folder: str) -> BlobStore:
    return open_blob_store(config, folder)


# Files one process writes whole and others load whole (VLAD codebooks, model checkpoints) go through the
# same stores as the per-image features, one folder each ("codebooks", "models"), so they follow
# STORAGE_BACKEND with them. The catalogue records a *reference* to such a file: with the local backend its
# path (as before this layer: existing records stay valid), with s3 its ``s3://bucket/prefix/folder/key``
# address, which says where it is and which process configuration can read it.


PUBLISHED_FOLDERS = ("codebooks", "models")


class StoredFileUnavailable(ConnectionError):
    """A published file (codebook, checkpoint) could not be read: its object or file is gone (``missing``),
    or the store did not answer. A ConnectionError, so a search answers 503 rather than 500; callers that
    know what rebuilds the file (the VLAD scorer) say so."""

    def __init__(self, reference: str, reason: str, *, missing: bool) -> None:
        super().__init__(f"{reference}: {reason}")
        self.reference = reference
        self.missing = missing


def put_file(folder: str, name: str, data: bytes) -> str:
    """Store ``data`` as ``name`` in ``folder`` of the configured store; returns the reference to record
    (locally the file's path under FEATURES_ROOT/<folder>, exactly as before; with s3 its address)."""
    store = feature_blobs(folder)
    store.put(name, data)
    return store.describe(name)


def publish_file(path: Path, folder: str, name: str) -> str:
    """Make a finished local file that other processes load (a run's ``best.pt``) readable by all of them,
    and return the reference to record. Local backend: the file is on the shared folder already, so its
    own path is the reference and nothing is copied; s3: it is uploaded as ``folder/name``."""
    if settings.STORAGE_BACKEND != "s3":
        return str(path)
    return put_file(folder, name, Path(path).read_bytes())


@contextmanager
def staging_folder(folder: str) -> Iterator[Path]:
    """Where to write a file that `publish_file` then publishes: FEATURES_ROOT/<folder> with the local
    backend (the file stays there and its path is the reference, as before), a temporary folder with s3
    (the object is the reference; the folder goes when the block ends)."""
    if settings.STORAGE_BACKEND != "s3":
        yield Path(settings.FEATURES_ROOT) / folder
        return
    with tempfile.TemporaryDirectory(prefix=f"{folder}-") as staging:
        yield Path(staging)


def is_stored_object(reference: str) -> bool:
    """Whether ``reference`` names an object in a bucket (not a local path)."""
    return reference.startswith("s3://")


def read_file(reference: str) -> bytes:
    """The bytes of a published file: a local path is read as before; an object is read through this
    process's store (and its STORAGE_CACHE_DIR copy, if any). Raises `StoredFileUnavailable`."""
    if not is_stored_object(reference):
        try:
            return Path(reference).read_bytes()
        except FileNotFoundError:
            raise StoredFileUnavailable(reference, "no such file", missing=True) from None
        except OSError as error:
            raise StoredFileUnavailable(reference, str(error), missing=False) from error
    store, key = _locate(reference)
    try:
        return store.get(key)
    except KeyError:
        raise StoredFileUnavailable(reference, "no such object in the bucket", missing=True) from None
    except OSError as error:
        raise StoredFileUnavailable(reference, f"the store did not answer: {error}", missing=False) from error


@contextmanager
def local_file(reference: str) -> Iterator[Path]:
    """A file on this machine with the published file's bytes, for loaders that open paths (torch.load of a
    checkpoint). A local path is yielded as it is; an object is fetched once into STORAGE_CACHE_DIR/<folder>
    and kept there (checkpoint objects are named by their content, so the copy cannot go stale), or without
    a cache folder into a temporary file removed when the block ends."""
    if not is_stored_object(reference):
        yield Path(reference)
        return
    store, key = _locate(reference)
    if isinstance(store, CachedBlobStore):
        read_file(reference)  # fills the cache
        yield store.cache.path(key)
        return
    data = read_file(reference)
    with tempfile.TemporaryDirectory(prefix="stored-file-") as folder:
        path = Path(folder) / PurePosixPath(key).name
        path.write_bytes(data)
        yield path


def lasting_local_copy(reference: str, folder: Path) -> str:
    """``reference`` as a path that stays valid as long as ``folder``: a local path (or ``imagenet``) is
    returned as it is; an object is copied once into ``folder``, e.g. a training run's own folder, so a
    resumed run finds the same path in its ``last.pt``."""
    if not is_stored_object(reference):
        return reference
    path = Path(folder) / PurePosixPath(reference).name
    if not path.is_file():
        data = read_file(reference)
        atomic_write(path, lambda handle: handle.write(data))
    return str(path)


def _locate(reference: str) -> tuple[BlobStore, str]:
    """The store and key an ``s3://`` reference names; it must be in this process's bucket and prefix."""
    config = storage_config()
    if config.backend != "s3" or config.s3 is None:
        raise StoredFileUnavailable(
            reference, "it is in a bucket, but this process has STORAGE_BACKEND=local", missing=False
        )
    base = "/".join(part for part in (config.s3.bucket, config.s3.prefix.strip("/")) if part)
    rest = reference.removeprefix(f"s3://{base}/")
    folder, _, key = rest.partition("/")
    if rest == reference or folder not in PUBLISHED_FOLDERS or not _is_key(key):
        raise StoredFileUnavailable(
            reference,
            f"not a codebook or checkpoint under this process's bucket and prefix s3://{base}/",
            missing=False,
        )
    return feature_blobs(folder), key


def _is_key(key: str) -> bool:
    try:
        check_key(key)
    except ValueError:
        return False
    return True
