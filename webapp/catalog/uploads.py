"""The upload size limit, checked before any bytes are decoded (and before they are read when possible)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from django.conf import settings
from django.core.files.uploadedfile import UploadedFile

from retrieval_core.imaging import ImageLoadError


class UploadTooLarge(ImageLoadError):
    """The file exceeds UPLOAD_MAX_BYTES."""


def check_upload_size(size: int, name: str) -> None:
    if size > settings.UPLOAD_MAX_BYTES:
        raise UploadTooLarge(
            f"{name}: {size / 1e6:.1f} MB is over the {settings.UPLOAD_MAX_BYTES / 1e6:.0f} MB limit"
        )


def read_upload(upload: UploadedFile) -> bytes:
    name = upload.name or "upload"
    if upload.size is not None:
        check_upload_size(upload.size, name)
    content = upload.read()
    check_upload_size(len(content), name)
    return content


@dataclass
class ReadUploads:
    """Uploaded files read: ``(name, bytes)`` of those within the limit, ``(name, message)`` of the others."""

    readable: list[tuple[str, bytes]] = field(default_factory=list)
    errors: list[tuple[str, str]] = field(default_factory=list)
    too_large: bool = False  # one of them was over UPLOAD_MAX_BYTES


def read_uploads(uploads: Iterable[UploadedFile]) -> ReadUploads:
    read = ReadUploads()
    for upload in uploads:
        name = upload.name or "upload"
        try:
            read.readable.append((name, read_upload(upload)))
        except UploadTooLarge as error:
            read.too_large = True
            read.errors.append((name, str(error)))
        except ImageLoadError as error:
            read.errors.append((name, str(error)))
    return read
