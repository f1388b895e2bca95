"""Media files (photos, thumbnails, query photos, evaluation reports) through Django's storage API only.

``MEDIA_STORAGE=local`` keeps them under MEDIA_ROOT (FileSystemStorage); ``s3`` puts them in the feature
store's bucket under ``STORAGE_PREFIX/media/`` (`MediaS3Storage`). The names are the same under both
(``images/ab/<sha256>.jpg``...), so moving media between backends is copying files to objects. Code never
asks a stored file for its path: it reads bytes (`photo_bytes`, `read_media`), or, where a library needs
files on disk (a training DataLoader), borrows local copies (`local_media_paths`).
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError
from django.conf import settings
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db.models.fields.files import FieldFile
from django.http import FileResponse, Http404, HttpRequest, HttpResponse
from django.utils.encoding import filepath_to_uri
from storages.backends.s3 import S3Storage

from retrieval_core.atomic import atomic_write
from retrieval_core.imaging import ImageLoadError
from retrieval_core.storage.s3 import ensure_bucket

logger = logging.getLogger(__name__)

LocalPath = Callable[[str], Path]


class MediaUnavailable(ConnectionError):
    """The media store could not answer (network, server error, access denied): not the file's fault, so
    callers retry or fail the task rather than mark the photo bad."""


class MediaS3Storage(S3Storage):  # type: ignore[misc]  # django-storages ships no type information
    """django-storages' S3 storage on the bucket, endpoint and credentials of the feature store (AWS_*),
    under ``STORAGE_PREFIX/media/``.

    URLs stay ``MEDIA_URL<name>`` as with local files: the web server streams them (`serve_media`) or a
    proxy in front maps ``/media/`` to the bucket, so browsers never need to reach the bucket's endpoint.
    """

    def get_default_settings(self) -> dict[str, Any]:
        from botocore.config import Config

        return {
            **super().get_default_settings(),
            "bucket_name": settings.AWS_STORAGE_BUCKET_NAME,
            "location": media_prefix(),
            "endpoint_url": settings.AWS_S3_ENDPOINT_URL or None,  # None: AWS itself
            "region_name": settings.AWS_S3_REGION_NAME or None,
            "access_key": settings.AWS_ACCESS_KEY_ID or None,  # None: boto3's own chain (instance role...)
            "secret_key": settings.AWS_SECRET_ACCESS_KEY or None,
            "file_overwrite": True,  # names are content-addressed: the same name is the same bytes
            "querystring_auth": False,
            "client_config": Config(
                connect_timeout=10,
                read_timeout=30,
                retries={"max_attempts": 3, "mode": "standard"},
                s3={"addressing_style": "path"},  # MinIO and other self-hosted servers
            ),
        }

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self._bucket_checked = not settings.STORAGE_CREATE_BUCKET

    def url(self, name: str, parameters: Any = None, expire: Any = None, http_method: Any = None) -> str:
        return f"{settings.MEDIA_URL}{filepath_to_uri(name)}"

    def _save(self, name: str, content: Any) -> str:
        if not self._bucket_checked:  # STORAGE_CREATE_BUCKET (compose's MinIO, tests): made on first write
            ensure_bucket(self.connection.meta.client, self.bucket_name)
            self._bucket_checked = True
        return str(super()._save(name, content))


def media_prefix() -> str:
    """Where media objects live in the bucket: ``<STORAGE_PREFIX>/media``."""
    return "/".join(part for part in (settings.STORAGE_PREFIX.strip("/"), "media") if part)


def read_media(name: str) -> bytes:
    """The stored bytes of ``name``. Raises FileNotFoundError when there is no such file, OSError for a
    local read error, and `MediaUnavailable` when the object store cannot answer."""
    try:
        with default_storage.open(name, "rb") as handle:
            data = handle.read()
    except (BotoCoreError, ClientError) as error:
        raise MediaUnavailable(f"media store unavailable reading {name}: {error}") from error
    return bytes(data)


def photo_bytes(photo: FieldFile | str) -> bytes:
    """A photo's encoded bytes for the decoders (they all accept bytes). A missing or unreadable file raises
    ``ImageLoadError``, as decoding a missing path did, so the photo is reported failed with the reason;
    an unreachable store raises `MediaUnavailable` instead."""
    name = photo if isinstance(photo, str) else photo.name
    if not name:
        raise ImageLoadError("File not found: the photo has no file")
    try:
        return read_media(name)
    except FileNotFoundError:
        raise ImageLoadError(f"File not found: {name}") from None
    except MediaUnavailable:
        raise
    except OSError as error:
        raise ImageLoadError(f"Could not read file {name}: {error.strerror or error}") from None


@contextmanager
def local_media_paths() -> Iterator[LocalPath]:
    """Yields ``local_path(name) -> Path``: a file on this machine with the photo's bytes, for code that
    opens many files by path (training). Local storage: the stored file itself. S3: a copy downloaded on
    first use into ``STORAGE_CACHE_DIR/media`` (kept: photo names are content-addressed, so a copy never
    goes stale) or, without a cache folder, into a temporary folder removed when the block ends.

    Meant for photos; a missing or unreadable one raises ``ImageLoadError`` naming it."""
    if _has_local_paths():
        yield lambda name: Path(default_storage.path(name))
        return
    with _cache_folder() as folder:

        def local_path(name: str) -> Path:
            path = folder / name
            if not path.is_file():
                data = photo_bytes(name)
                atomic_write(path, lambda handle: handle.write(data))
            return path

        yield local_path


def _has_local_paths() -> bool:
    try:
        default_storage.path("")
    except NotImplementedError:  # Django's answer for a storage without local files (S3)
        return False
    return True


@contextmanager
def _cache_folder() -> Iterator[Path]:
    if settings.STORAGE_CACHE_DIR:
        yield Path(settings.STORAGE_CACHE_DIR) / "media"
        return
    with tempfile.TemporaryDirectory(prefix="media-") as folder:
        yield Path(folder)


def replace_media(name: str, content: bytes) -> str:
    """Store ``content`` under exactly ``name``, replacing what was there (a re-run's report): local storage
    would otherwise pick a new name next to the old file."""
    if default_storage.exists(name):
        default_storage.delete(name)
    return str(default_storage.save(name, ContentFile(content)))


def list_media(folder: str) -> list[str]:
    """Names of the files directly in ``folder`` (sorted); empty when there is none."""
    try:
        _, files = default_storage.listdir(folder)
    except FileNotFoundError:  # local storage; S3 has no folders and lists nothing
        return []
    return sorted(f"{folder.rstrip('/')}/{file}" for file in files)


def serve_media(request: HttpRequest, name: str) -> HttpResponse | FileResponse:
    """``MEDIA_URL<name>`` from the storage, local or S3 (with ``SERVE_MEDIA``; else a proxy serves it).
    A missing file is a 404, a name outside the media store a 400, an unreachable store a 503."""
    try:
        handle = default_storage.open(name, "rb")
    except (OSError, ValueError) as error:  # missing, a folder, unreadable, a NUL in the name
        raise Http404("No such media file.") from error
    except (BotoCoreError, ClientError) as error:
        logger.warning("media %s not served: %s", name, error)
        return HttpResponse("The media store is unavailable; try again shortly.", status=503)
    return FileResponse(handle)
