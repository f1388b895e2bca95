"""Backup and restore of a whole deployment: the catalogue, the media, the vectors and the local features.

One archive (tar, gzip-compressed when its name ends in ``.gz``/``.tgz``) holds:

- ``manifest.json``: format, time, the counts, the collections (name, dimension, fields), the FEATURES_ROOT
  the stored references point into;
- ``catalogue.json``: the database (``dumpdata``: every app, the users and their API tokens; not the
  sessions, nor the content types and permissions that ``migrate`` makes);
- ``media/``: every file of the media storage (photos, thumbnails, kept query photos, evaluation reports),
  local or in the bucket;
- ``vectors/<collection>.npz``: every row of each model version's Milvus collection, exported as stored:
  ids, vectors and filter fields. Exported rather than re-embedded: a restore is exact and needs no model
  run (hours on a large collection, and a fine-tuned model's checkpoint);
- ``features/``: the local feature store under FEATURES_ROOT (SIFT, CNN patches, VLAD codebooks with their
  PCA-whitening, model checkpoints); eval-cache is left out (rebuilt on demand). With
  ``STORAGE_BACKEND=s3`` these live in the bucket, which is backed up with the bucket's own tools
  (versioning, replication): the manifest says so.

`restore` loads such an archive into an empty stack (migrated, no photos, no model versions, no users, none
of the collections), re-pointing stored FEATURES_ROOT references at this stack's FEATURES_ROOT; a search
then ranks exactly as it did where the backup was made (tests/webapp/operations/test_backup.py).

For a consistent archive, stop the workers and beat while it is written (the web may keep serving).
Whatever still differs after a restore (a photo indexed while the backup ran) is what the reconciler mends.
"""

from __future__ import annotations

import dataclasses
import io
import json
import logging
import os
import shutil
import tarfile
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

import numpy as np
from django.conf import settings
from django.contrib.auth.models import User
from django.core.files import File
from django.core.files.storage import Storage, default_storage
from django.core.management import call_command
from pymilvus import MilvusClient

from retrieval_core.index.milvus_store import PhotoScalars
from webapp.catalog.models import Image
from webapp.embeddings.models import EmbeddingModelVersion
from webapp.embeddings.services import clear_caches, collection_store

logger = logging.getLogger(__name__)

FORMAT = 1
# Not backed up: made by `migrate` (and referred to by natural keys), or short-lived.
EXCLUDED_MODELS = ["contenttypes", "auth.permission", "sessions", "admin.logentry"]
SKIPPED_FEATURE_FOLDERS = {"eval-cache"}
_ROWS_PER_CALL = 1000

Report = Callable[[str], None]


class RestoreRefused(RuntimeError):
    """The archive cannot be restored here (not an archive of this format, or the stack is not empty)."""


@dataclass(frozen=True)
class CollectionDump:
    name: str
    dim: int
    rows: int
    fields: list[str]


@dataclass(frozen=True)
class BackupSummary:
    path: Path
    images: int
    media_files: int
    feature_files: int
    collections: list[CollectionDump]


def archive_path(target: Path, now: datetime | None = None) -> Path:
    """``target`` itself when it names an archive, else a dated archive inside the folder ``target``."""
    if target.name.endswith((".tar", ".tar.gz", ".tgz")):
        return target
    stamp = (now or datetime.now(UTC)).strftime("%Y%m%dT%H%M%SZ")
    return target / f"landmarks-backup-{stamp}.tar.gz"


def backup(target: Path, report: Report = logger.info) -> BackupSummary:
    """Write the archive (see the module docstring) and return what it holds."""
    path = archive_path(target)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    compressed = path.name.endswith((".gz", ".tgz"))
    with (
        tempfile.TemporaryDirectory(prefix="landmarks-backup-") as scratch,
        tarfile.open(partial, "w:gz" if compressed else "w") as tar,
    ):
        catalogue = Path(scratch) / "catalogue.json"
        call_command("dumpdata", natural_foreign=True, exclude=EXCLUDED_MODELS, output=str(catalogue))
        tar.add(catalogue, "catalogue.json")
        report(f"catalogue: {Image.objects.count()} photos")
        media = sum(_add_stored(tar, default_storage, name) for name in _walk(default_storage, ""))
        report(f"media: {media} files")
        features = _add_features(tar)
        report(f"local features: {features} files" if features >= 0 else "local features: in the bucket")
        collections = [_add_collection(tar, Path(scratch), name) for name in _collections()]
        for dump in collections:
            report(f"vectors: {dump.rows} in {dump.name}")
        manifest = {
            "format": FORMAT,
            "created_at": datetime.now(UTC).isoformat(),
            "images": Image.objects.count(),
            "media_files": media,
            "features": "local" if features >= 0 else "s3 bucket (not in this archive)",
            "feature_files": max(features, 0),
            "features_root": str(Path(settings.FEATURES_ROOT)),
            "collections": [dataclasses.asdict(dump) for dump in collections],
        }
        _add_bytes(tar, "manifest.json", json.dumps(manifest, indent=2).encode())
    partial.replace(path)  # never a truncated archive under the final name
    return BackupSummary(path, int(str(manifest["images"])), media, max(features, 0), collections)


def restore(archive: Path, report: Report = logger.info) -> dict[str, Any]:
    """Load ``archive`` into this stack, which must be empty (`RestoreRefused` otherwise); the manifest."""
    if not archive.is_file():
        raise RestoreRefused(f"{archive} is not a file")
    call_command("migrate", interactive=False, verbosity=0)
    with tarfile.open(archive) as tar:
        manifest = _manifest(tar)
        _check_empty([str(c["name"]) for c in manifest["collections"]])
        with tempfile.TemporaryDirectory(prefix="landmarks-restore-") as scratch:
            catalogue = Path(scratch) / "catalogue.json"
            media = features = 0
            vectors: dict[str, Path] = {}
            for member in tar:
                if not member.isfile():
                    continue
                name = _safe_name(member.name)
                source = tar.extractfile(member)
                assert source is not None  # a regular file
                if name == "catalogue.json":
                    _rewrite_roots(source.read(), str(manifest["features_root"]), catalogue)
                elif name.startswith("media/"):
                    stored = name.removeprefix("media/")
                    if default_storage.save(stored, File(source, name=stored)) != stored:
                        raise RestoreRefused(
                            f"media file {stored} exists already: restore needs an empty stack"
                        )
                    media += 1
                elif name.startswith("features/"):
                    _write_file(Path(settings.FEATURES_ROOT) / name.removeprefix("features/"), source)
                    features += 1
                elif name.startswith("vectors/"):
                    collection = name.removeprefix("vectors/").removesuffix(".npz")
                    vectors[collection] = Path(scratch) / name
                    _write_file(vectors[collection], source)
            call_command("loaddata", str(catalogue), verbosity=0)
            report(
                f"catalogue: {Image.objects.count()} photos; media: {media} files; features: {features} files"
            )
            clear_caches()
            for entry in manifest["collections"]:
                rows = _load_collection(str(entry["name"]), int(entry["dim"]), vectors[str(entry["name"])])
                report(f"vectors: {rows} in {entry['name']}")
    clear_caches()
    return manifest


def _walk(storage: Storage, folder: str) -> Iterator[str]:
    """Every file name in the storage under ``folder`` (local folder or bucket alike)."""
    try:
        folders, files = storage.listdir(folder)
    except FileNotFoundError:
        return
    prefix = f"{folder}/" if folder else ""
    yield from (prefix + name for name in sorted(files))
    for sub in sorted(folders):
        yield from _walk(storage, prefix + sub)


def _add_stored(tar: tarfile.TarFile, storage: Storage, name: str) -> int:
    info = tarfile.TarInfo(f"media/{name}")
    info.size = storage.size(name)
    info.mtime = int(datetime.now(UTC).timestamp())
    with storage.open(name, "rb") as handle:
        tar.addfile(info, handle)
    return 1


def _add_bytes(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mtime = int(datetime.now(UTC).timestamp())
    tar.addfile(info, io.BytesIO(data))


def _add_features(tar: tarfile.TarFile) -> int:
    """The local feature store's files; -1 with the s3 backend (the bucket is backed up on its own)."""
    if settings.STORAGE_BACKEND != "local":
        return -1
    root = Path(settings.FEATURES_ROOT)
    count = 0
    for path in sorted(root.rglob("*")) if root.is_dir() else []:
        relative = path.relative_to(root)
        if path.is_file() and relative.parts[0] not in SKIPPED_FEATURE_FOLDERS and ".tmp" not in path.name:
            tar.add(path, f"features/{relative.as_posix()}", recursive=False)
            count += 1
    return count


def _collections() -> list[str]:
    """Each model version's collection that exists in Milvus."""
    client = _client()
    try:
        existing = set(client.list_collections())
    finally:
        client.close()
    names = EmbeddingModelVersion.objects.order_by("pk").values_list("collection_name", flat=True)
    return [name for name in names if name in existing]


def _client() -> MilvusClient:
    return MilvusClient(uri=settings.MILVUS_URI, token=settings.MILVUS_TOKEN, timeout=60)


def _add_collection(tar: tarfile.TarFile, scratch: Path, name: str) -> CollectionDump:
    """Every row of the collection as stored, one array per field (``vector``: (N, dim) float32)."""
    client = _client()
    try:
        schema = client.describe_collection(name)
        fields = [str(field["name"]) for field in schema["fields"]]
        dim = next(int(f["params"]["dim"]) for f in schema["fields"] if f["name"] == "vector")
        columns: dict[str, list[object]] = {field: [] for field in fields}
        iterator = client.query_iterator(
            name, batch_size=_ROWS_PER_CALL, filter="id >= 0 or id < 0", output_fields=fields,
            consistency_level="Strong",
        )  # fmt: skip
        try:
            while rows := iterator.next():
                for row in rows:
                    for field in fields:
                        columns[field].append(row[field])
        finally:
            iterator.close()
    finally:
        client.close()
    arrays = {field: np.asarray(values) for field, values in columns.items()}
    arrays["vector"] = np.asarray(columns["vector"], dtype=np.float32).reshape(-1, dim)
    path = scratch / f"{name}.npz"
    np.savez_compressed(path, **arrays)  # type: ignore[arg-type]  # numpy's stub types **arrays as allow_pickle too
    tar.add(path, f"vectors/{name}.npz")
    return CollectionDump(name, dim, len(arrays["id"]), fields)


def _manifest(tar: tarfile.TarFile) -> dict[str, Any]:
    try:
        member = tar.getmember("manifest.json")
    except KeyError:
        raise RestoreRefused("not a backup archive of this product: no manifest.json") from None
    source = tar.extractfile(member)
    manifest: dict[str, Any] = json.loads(source.read() if source else b"{}")
    if manifest.get("format") != FORMAT:
        raise RestoreRefused(f"backup format {manifest.get('format')!r}; this version restores {FORMAT}")
    return manifest


def _check_empty(collections: list[str]) -> None:
    """Refuse to restore over data: a restore merged into a live catalogue would mix two collections."""
    found = {
        "photos": Image.objects.count(),
        "model versions": EmbeddingModelVersion.objects.count(),
        "users": User.objects.count(),
    }
    client = _client()
    try:
        present = [name for name in collections if client.has_collection(name)]
    finally:
        client.close()
    problems = [f"{count} {what}" for what, count in found.items() if count] + [
        f"Milvus collection {name}" for name in present
    ]
    if problems:
        raise RestoreRefused(
            "restore needs an empty stack (a new database, Milvus and media); this one has "
            + ", ".join(problems)
        )


def _safe_name(name: str) -> str:
    """An archive member's name, refused if it would land outside its folder."""
    path = Path(name)
    if path.is_absolute() or ".." in path.parts:
        raise RestoreRefused(f"unsafe path in the archive: {name!r}")
    return path.as_posix()


def _write_file(path: Path, source: IO[bytes]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as out:
        shutil.copyfileobj(source, out)


def _rewrite_roots(data: bytes, old_root: str, out: Path) -> None:
    """The catalogue with references to files under the old FEATURES_ROOT pointing into this one's."""
    new_root = str(Path(settings.FEATURES_ROOT))
    objects = json.loads(data)

    def moved(value: object) -> object:
        if isinstance(value, str) and (value == old_root or value.startswith(old_root + os.sep)):
            return new_root + value[len(old_root) :]
        return value

    for item in objects:
        item["fields"] = {key: moved(value) for key, value in item["fields"].items()}
    out.write_text(json.dumps(objects))


def _load_collection(name: str, dim: int, path: Path) -> int:
    """Create the collection as this stack builds them (schema, index settings) and write the rows back."""
    store = collection_store(name, dim)
    client = _client()
    try:
        with np.load(path, allow_pickle=False) as data:
            columns = {field: data[field] for field in data.files}
        count = len(columns["id"])
        # A collection exported before the filter fields existed gets them as unknown (its photos unfiltered).
        unknown: dict[str, object] = {"landmark_id": -1, **PhotoScalars().fields()}
        for start in range(0, count, _ROWS_PER_CALL):
            rows = [
                {
                    **unknown,
                    **{
                        field: (values[i].tolist() if field == "vector" else values[i].item())
                        for field, values in columns.items()
                    },
                }
                for i in range(start, min(start + _ROWS_PER_CALL, count))
            ]
            client.upsert(name, rows)
    finally:
        client.close()
    store.flush()
    return count
