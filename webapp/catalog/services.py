"""Writes to the catalogue: registering photos (from an upload or an imported collection).

Registering validates and stores the file, records its EXIF, and schedules indexing once the transaction
commits. Registering the same bytes from the same source twice returns the existing image.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from django.conf import settings
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import IntegrityError, transaction
from PIL import Image as PILImage

from retrieval_core.datasets.collection import UNLABELLED, read_collection_report
from retrieval_core.imaging import ImageLoadError, load_image
from webapp import task_names
from webapp.catalog.exif import read_exif
from webapp.catalog.models import Image, ImageExif, Landmark
from webapp.catalog.uploads import check_upload_size
from webapp.dispatch import Event, announce, send_on_commit

logger = logging.getLogger(__name__)

THUMBNAIL_SIZE = 320
_EXTENSIONS = {
    "JPEG": ".jpg", "PNG": ".png", "WEBP": ".webp", "BMP": ".bmp", "TIFF": ".tif", "GIF": ".gif",
    "HEIF": ".heic", "AVIF": ".avif",
}  # fmt: skip


@dataclass(frozen=True)
class RegisteredImage:
    image: Image
    created: bool


@dataclass
class ImportReport:
    created: int = 0
    existing: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    scheduled_image_ids: list[int] = field(default_factory=list)


def get_or_create_landmark(name: str, external_id: str = "") -> Landmark:
    name = name.strip()
    if not name:
        raise ValueError("a landmark needs a name")
    landmark, _ = Landmark.objects.get_or_create(name=name, defaults={"external_id": external_id})
    return landmark


def register_image(
    content: bytes,
    *,
    original_name: str,
    source: str = "",
    landmark: Landmark | None = None,
    split: str = "",
    schedule: bool = True,
    position: tuple[float, float] | None = None,
) -> RegisteredImage:
    """Validate, store and record one photo; raise ImageLoadError with a user-facing message if bad.

    ``position``: where the photo was taken when the collection says so (``labels.csv``); it wins over EXIF.
    """
    check_upload_size(len(content), original_name)
    sha256 = hashlib.sha256(content).hexdigest()
    existing = Image.objects.filter(sha256=sha256, source=source).first()
    if existing is not None:
        return RegisteredImage(existing, created=False)

    decoded = load_image(content, max_pixels=settings.IMAGE_MAX_PIXELS)
    with PILImage.open(io.BytesIO(content)) as header:
        image_format = header.format or "UNKNOWN"
        exif = read_exif(header)
    if position is not None:
        exif = dataclasses.replace(exif, latitude=position[0], longitude=position[1])
    stored_name = _store_file(f"images/{sha256[:2]}/{sha256}{_EXTENSIONS.get(image_format, '.img')}", content)
    thumbnail_name = _store_file(f"thumbs/{sha256[:2]}/{sha256}.jpg", _thumbnail_jpeg(decoded))
    try:
        with transaction.atomic():
            image = Image.objects.create(
                file=stored_name,
                thumbnail=thumbnail_name,
                sha256=sha256,
                source=source,
                original_name=Path(original_name).name[:255],
                landmark=landmark,
                split=split,
                width=decoded.width,
                height=decoded.height,
                file_size=len(content),
                format=image_format,
            )
            ImageExif.objects.create(image=image, **exif.__dict__)
    except IntegrityError:
        # A concurrent request registered the same bytes first: theirs is the image.
        return RegisteredImage(Image.objects.get(sha256=sha256, source=source), created=False)
    if schedule:
        schedule_indexing([image.pk])
    return RegisteredImage(image, created=True)


def _thumbnail_jpeg(image: PILImage.Image) -> bytes:
    """A small JPEG for result grids, so a page of ten results does not load ten full photos."""
    thumb = image.copy()
    thumb.thumbnail((THUMBNAIL_SIZE, THUMBNAIL_SIZE), PILImage.Resampling.LANCZOS)
    buffer = io.BytesIO()
    thumb.save(buffer, format="JPEG", quality=85)
    return buffer.getvalue()


def _store_file(name: str, content: bytes) -> str:
    """Content-addressed storage (the name holds the hash): identical bytes are stored once."""
    if not default_storage.exists(name):
        saved = default_storage.save(name, ContentFile(content))
        if saved != name:  # a race wrote it meanwhile; keep one copy
            default_storage.delete(saved)
    return name


def schedule_indexing(image_ids: Sequence[int]) -> None:
    """Announce the registered images: once the transaction commits they are embedded + indexed and their
    local features extracted (`webapp.dispatch.FOLLOWING_TASKS`)."""
    announce(Event.IMAGES_REGISTERED, image_ids)


def schedule_analysis(image_ids: Sequence[int]) -> None:
    """Queue the dataset analysis (quality, duplicates, label noise) once the current transaction commits."""
    if image_ids:
        send_on_commit(task_names.ANALYSE_COLLECTION, [int(i) for i in image_ids])


def import_collection(
    root: Path, *, progress: Callable[[int, int], None] | None = None
) -> ImportReport:
    """Register every image of a collection (folder per landmark, labels.csv, GLDv2 or a flat folder of
    unlabelled photos) and queue indexing; an empty landmark registers the image without one.

    Indexing is queued a batch at a time as the images are registered, so the workers embed and extract
    while the rest is still being registered; the analysis requests of those batches are coalesced into
    one run by the worker (`webapp.curation.analysis.request_analysis`).
    """
    collection = read_collection_report(root)
    report = ImportReport(skipped=list(collection.skipped))
    landmarks: dict[str, Landmark | None] = {UNLABELLED: None}  # unlabelled images are indexed too
    total = len(collection.items)
    queued = 0  # report.scheduled_image_ids[:queued] are queued already

    def queue_registered(*, at_least: int) -> None:
        nonlocal queued
        if len(report.scheduled_image_ids) - queued >= at_least:
            batch = report.scheduled_image_ids[queued:]
            schedule_indexing(batch)
            schedule_analysis(batch)
            queued = len(report.scheduled_image_ids)
    for done, item in enumerate(collection.items, start=1):
        if item.landmark not in landmarks:
            landmarks[item.landmark] = get_or_create_landmark(item.landmark)
        landmark = landmarks[item.landmark]
        try:
            registered = register_image(
                item.path.read_bytes(),
                original_name=item.path.name,
                source=item.relpath,
                landmark=landmark,
                split=_split_value(item.split),
                schedule=False,
                position=item.position,
            )
        except (ImageLoadError, OSError) as error:
            report.failed.append((item.relpath, str(error)))
        else:
            if registered.created:
                report.created += 1
            else:
                report.existing += 1
            if registered.image.status not in (Image.Status.INDEXED, Image.Status.EXCLUDED):
                report.scheduled_image_ids.append(registered.image.pk)
                queue_registered(at_least=settings.INDEX_TASK_BATCH)
        if progress is not None:
            progress(done, total)
    queue_registered(at_least=1)
    return report


def _split_value(split: str | None) -> str:
    valid = {choice.value for choice in Image.Split}
    return split if split in valid else ""


def upload_images(
    files: Iterable[tuple[str, bytes]], *, landmark_name: str = ""
) -> tuple[list[Image], list[tuple[str, str]]]:
    """Register photos uploaded in the web UI or the API; returns (images, [(file name, error message)]).

    The new photos are queued for indexing together, a batch of INDEX_TASK_BATCH per task, not one task each.
    """
    landmark = get_or_create_landmark(landmark_name) if landmark_name.strip() else None
    images: list[Image] = []
    created: list[int] = []
    errors: list[tuple[str, str]] = []
    for name, content in files:
        try:
            registered = register_image(content, original_name=name, landmark=landmark, schedule=False)
        except ImageLoadError as error:
            errors.append((name, str(error)))
        else:
            images.append(registered.image)
            if registered.created:
                created.append(registered.image.pk)
    schedule_indexing(created)
    schedule_analysis([image.pk for image in images])
    return images, errors
