"""Read a landmark photo collection from disk, whatever of the three supported layouts it uses.

Layouts (``detect_layout`` checks them in this order):

- ``labels_csv``: ``root/labels.csv`` with columns ``image,landmark[,split][,latitude,longitude]``; ``image``
  is relative to ``root``; an empty ``split`` means "not assigned" (``None``). The shared development sets
  use it. ``latitude,longitude`` (decimal degrees, both or neither per row) say where a photo was taken for
  collections whose GPS is not in EXIF; they win over EXIF.
- ``gldv2``: Google Landmarks v2 files ``train.csv`` (``id,url,landmark_id``) and/or ``index.csv`` (``id``).
  Image ``abc…`` lies at ``train/a/b/c/abc….jpg`` (``index/a/b/c/…`` for the index) or directly at
  ``a/b/c/abc….jpg`` under ``root``, as the official tar files unpack. Train images get ``split=None`` (the
  caller decides what is trained on); index images get ``split="index"`` and, since ``index.csv`` has no
  labels, ``landmark=UNLABELLED`` unless it carries a ``landmark_id`` column.
- ``folders``: one folder per landmark, ``root/<landmark>/**/*.jpg|jpeg|png|webp|heic|heif|avif``; hidden
  files and folders are ignored.
- ``flat``: photos directly under ``root`` and no landmark folders: every image is unlabelled.

In ``labels.csv`` an empty ``landmark`` means unlabelled (``UNLABELLED``): such images are indexed and
searchable, and curation proposes a landmark for them.

Rows whose image file is missing are skipped and reported, not fatal: a large download is rarely complete.
Anything that makes the collection ambiguous or unsafe (missing columns, paths leaving ``root``, conflicting
labels, no images at all) raises ``CollectionFormatError``.
"""

from __future__ import annotations

import csv
import dataclasses
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Literal

from retrieval_core.datasets.positions import Position, valid_position

Layout = Literal["gldv2", "labels_csv", "folders", "flat"]
LAYOUTS: tuple[Layout, ...] = ("gldv2", "labels_csv", "folders", "flat")

IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".webp", ".heic", ".heif", ".avif"})
UNLABELLED = ""
"""Landmark of images whose label is unknown (GLDv2 index images): usable as distractors only."""


def landmark_ids(landmarks: Iterable[str]) -> dict[str, int]:
    """Integer ids for landmark names (sorted names numbered from 0; unlabelled images get none), for an
    index that carries them with each hit as the catalogue's Milvus collections do."""
    return {name: i for i, name in enumerate(sorted(set(landmarks) - {UNLABELLED}))}

_GLDV2_ID = re.compile(r"^[0-9A-Za-z_-]{3,}$")


class CollectionFormatError(ValueError):
    """The folder is not a readable collection; the message says what to fix."""


@dataclass(frozen=True)
class CollectionItem:
    """One image of a collection.

    ``relpath`` (posix, relative to the collection root) is the image's stable identity: it survives moving
    the collection, unlike ``path``.
    """

    path: Path
    relpath: str
    landmark: str
    split: str | None
    position: Position | None = None
    """``(latitude, longitude)`` from ``labels.csv`` (None: not given there; EXIF may still have it)."""


@dataclass(frozen=True)
class CollectionReadResult:
    """Items sorted by ``relpath`` plus one human-readable reason per skipped row or file."""

    layout: Layout
    items: tuple[CollectionItem, ...]
    skipped: tuple[str, ...]

    @property
    def landmarks(self) -> tuple[str, ...]:
        return tuple(sorted({item.landmark for item in self.items}))


def detect_layout(root: Path) -> Layout:
    """Name the layout of ``root``; an explicit ``labels.csv`` wins over GLDv2 files and bare folders."""
    root = Path(root)
    if not root.is_dir():
        raise CollectionFormatError(f"collection folder {root} does not exist or is not a folder")
    if (root / "labels.csv").is_file():
        return "labels_csv"
    if (root / "train.csv").is_file() or (root / "index.csv").is_file():
        return "gldv2"
    if any(child.is_dir() and not child.name.startswith(".") for child in root.iterdir()):
        return "folders"
    if any(_is_image_file(child) for child in root.iterdir()):
        return "flat"
    raise CollectionFormatError(
        f"{root} has no labels.csv, no GLDv2 train.csv/index.csv, no landmark folders and no photos"
    )


def read_collection(root: Path, layout: Layout | None = None) -> list[CollectionItem]:
    """Items at ``root`` sorted by ``relpath``; ``read_collection_report`` also says what was skipped."""
    return list(read_collection_report(root, layout).items)


def read_collection_report(root: Path, layout: Layout | None = None) -> CollectionReadResult:
    """Read ``root`` (layout detected unless given) and say which rows or files were skipped and why."""
    root = Path(root)
    if not root.is_dir():
        raise CollectionFormatError(f"collection folder {root} does not exist or is not a folder")
    layout = layout or detect_layout(root)
    if layout not in LAYOUTS:
        raise CollectionFormatError(f"unknown layout {layout!r}; expected one of {', '.join(LAYOUTS)}")
    root = root.resolve()
    skipped: list[str] = []
    positions: dict[str, Position] = {}
    if layout == "labels_csv":
        rows = _read_labels_csv(root, skipped, positions)
    elif layout == "gldv2":
        rows = _read_gldv2(root, skipped)
    elif layout == "flat":
        rows = _read_flat(root, skipped)
    else:
        rows = _read_folders(root, skipped)
    items = [
        dataclasses.replace(item, position=positions[item.relpath]) if item.relpath in positions else item
        for item in _deduplicate(root, rows, skipped)
    ]
    if not items:
        detail = f" ({len(skipped)} rows/files skipped, first: {skipped[0]})" if skipped else ""
        raise CollectionFormatError(f"no images found in {root} ({layout} layout){detail}")
    return CollectionReadResult(layout=layout, items=tuple(items), skipped=tuple(skipped))


def _deduplicate(
    root: Path, rows: Iterable[tuple[str, str, str | None]], skipped: list[str]
) -> list[CollectionItem]:
    by_relpath: dict[str, CollectionItem] = {}
    for relpath, landmark, split in rows:
        seen = by_relpath.get(relpath)
        if seen is None:
            by_relpath[relpath] = CollectionItem(root / relpath, relpath, landmark, split)
        elif (seen.landmark, seen.split) == (landmark, split):
            skipped.append(f"{relpath}: listed twice")
        else:
            raise CollectionFormatError(
                f"{relpath} is listed twice with different labels: "
                f"({seen.landmark!r}, {seen.split!r}) and ({landmark!r}, {split!r})"
            )
    return [by_relpath[key] for key in sorted(by_relpath)]


def _safe_relpath(raw: str, where: str) -> str:
    """Normalise a user-given relative path to posix and refuse anything that could leave the root."""
    text = raw.strip().replace("\\", "/")
    if not text:
        raise CollectionFormatError(f"{where}: empty image path")
    pure = PurePosixPath(text)
    if pure.is_absolute() or re.match(r"^[A-Za-z]:", text):
        raise CollectionFormatError(f"{where}: image path {raw!r} must be relative to the collection folder")
    parts = [part for part in pure.parts if part != "."]
    if ".." in parts:
        raise CollectionFormatError(f"{where}: image path {raw!r} leaves the collection folder")
    return "/".join(parts)


def _csv_rows(path: Path, required: tuple[str, ...]) -> Iterator[tuple[int, dict[str, str]]]:
    """Yield (line number, row) with stripped values, after checking the header has ``required``."""
    with path.open(newline="", encoding="utf-8-sig") as handle:
        reader = csv.DictReader(handle)
        header = [name.strip() for name in reader.fieldnames or []]
        missing = [name for name in required if name not in header]
        if missing:
            raise CollectionFormatError(
                f"{path.name} lacks column(s) {', '.join(missing)}; found {', '.join(header) or 'no header'}"
            )
        reader.fieldnames = header
        for row in reader:
            yield reader.line_num, {k: (v or "").strip() for k, v in row.items() if isinstance(k, str)}


def _read_labels_csv(
    root: Path, skipped: list[str], positions: dict[str, Position]
) -> Iterator[tuple[str, str, str | None]]:
    """Rows of ``labels.csv``; positions given in its ``latitude,longitude`` columns go to ``positions``."""
    for line, row in _csv_rows(root / "labels.csv", ("image", "landmark")):
        where = f"labels.csv line {line}"
        relpath = _safe_relpath(row["image"], where)
        if not (root / relpath).is_file():
            skipped.append(f"{relpath}: file missing ({where})")
            continue
        position = _csv_position(row, where)
        if position is not None:
            positions[relpath] = position
        yield relpath, row["landmark"], row.get("split") or None


def _csv_position(row: dict[str, str], where: str) -> Position | None:
    """The row's ``latitude,longitude`` (both empty or absent: None); a half or invalid pair is refused."""
    raw = (row.get("latitude", ""), row.get("longitude", ""))
    if not any(raw):
        return None
    try:
        latitude, longitude = (float(value) for value in raw)
    except ValueError:
        raise CollectionFormatError(
            f"{where}: latitude,longitude must both be decimal degrees, got {raw[0]!r},{raw[1]!r}"
        ) from None
    if not valid_position(latitude, longitude):
        raise CollectionFormatError(f"{where}: ({latitude}, {longitude}) is not a position on Earth")
    return latitude, longitude


def _read_gldv2(root: Path, skipped: list[str]) -> Iterator[tuple[str, str, str | None]]:
    sources = [("train.csv", "train", ("id", "landmark_id"), None), ("index.csv", "index", ("id",), "index")]
    for filename, subdir, required, split in sources:
        csv_path = root / filename
        if not csv_path.is_file():
            continue
        for line, row in _csv_rows(csv_path, required):
            where = f"{filename} line {line}"
            image_id = row["id"]
            if not _GLDV2_ID.match(image_id):
                raise CollectionFormatError(f"{where}: {image_id!r} is not a GLDv2 image id")
            landmark = row.get("landmark_id", UNLABELLED)
            if "landmark_id" in required and not landmark:
                raise CollectionFormatError(f"{where}: empty landmark_id for {image_id}")
            relpath = _gldv2_relpath(root, subdir, image_id)
            if relpath is None:
                skipped.append(f"{image_id}: file missing ({where})")
                continue
            yield relpath, landmark, split


def _gldv2_candidates(subdir: str, image_id: str) -> tuple[str, str]:
    """Where GLDv2 keeps image ``image_id``: under ``subdir/`` or directly under the root."""
    nested = f"{image_id[0]}/{image_id[1]}/{image_id[2]}/{image_id}.jpg"
    return f"{subdir}/{nested}", nested


def _gldv2_relpath(root: Path, subdir: str, image_id: str) -> str | None:
    for candidate in _gldv2_candidates(subdir, image_id):
        if (root / candidate).is_file():
            return candidate
    return None


def _read_folders(root: Path, skipped: list[str]) -> Iterator[tuple[str, str, str | None]]:
    for folder in sorted(root.iterdir()):
        if folder.name.startswith("."):
            continue
        if not folder.is_dir():
            skipped.append(f"{folder.name}: not inside a landmark folder")
            continue
        for path in sorted(folder.rglob("*")):
            relative = path.relative_to(root)
            if any(part.startswith(".") for part in relative.parts) or not path.is_file():
                continue
            if path.suffix.lower() not in IMAGE_EXTENSIONS:
                skipped.append(f"{relative.as_posix()}: not a {'/'.join(sorted(IMAGE_EXTENSIONS))} file")
                continue
            yield relative.as_posix(), folder.name, None


def _is_image_file(path: Path) -> bool:
    return path.is_file() and not path.name.startswith(".") and path.suffix.lower() in IMAGE_EXTENSIONS


def _read_flat(root: Path, skipped: list[str]) -> Iterator[tuple[str, str, str | None]]:
    for path in sorted(root.iterdir()):
        if path.name.startswith(".") or not path.is_file():
            continue
        if path.suffix.lower() not in IMAGE_EXTENSIONS:
            skipped.append(f"{path.name}: not a {'/'.join(sorted(IMAGE_EXTENSIONS))} file")
            continue
        yield path.name, UNLABELLED, None
