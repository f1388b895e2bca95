"""The GLDv2 retrieval benchmark on disk: index images, test queries and the official solution file.

Files at the collection root (as Kaggle and the GLDv2 repository ship them):

- ``index.csv`` (``id``): index images, at ``index/a/b/c/<id>.jpg`` or ``a/b/c/<id>.jpg`` (the same
  conventions as ``collection.py``);
- ``test.csv`` (``id``): query images, at ``test/a/b/c/<id>.jpg`` or ``a/b/c/<id>.jpg``;
- ``retrieval_solution_v2.1.csv`` (``id,images,Usage``): per test image, its relevant index ids separated
  by spaces and its ``Usage``: ``Public`` or ``Private`` (the two scored halves) or ``Ignored`` (no
  landmark: images ``None``, never scored).

A partial download is usual, so missing files are skipped and reported: a query whose image is missing, or
whose relevant images are all missing, is left out (it could not be scored fairly); a missing relevant
image is dropped from its query's positives (it could never be retrieved).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from retrieval_core.datasets.collection import (
    _GLDV2_ID,
    UNLABELLED,
    CollectionFormatError,
    CollectionItem,
    _csv_rows,
    _gldv2_relpath,
)

__all__ = [
    "SOLUTION_FILENAME",
    "Gldv2Query",
    "Gldv2Retrieval",
    "Usage",
    "has_gldv2_retrieval",
    "read_gldv2_retrieval",
]

SOLUTION_FILENAME = "retrieval_solution_v2.1.csv"
Usage = Literal["Public", "Private", "Ignored"]
_USAGES: tuple[Usage, ...] = ("Public", "Private", "Ignored")


@dataclass(frozen=True)
class Gldv2Query:
    """A scored test image: ``positives`` are relpaths of its relevant index images present on disk."""

    image_id: str
    relpath: str
    positives: frozenset[str]
    usage: Usage


@dataclass(frozen=True)
class Gldv2Retrieval:
    """Index items (``split="index"``, unlabelled), scored queries sorted by id, and what was skipped."""

    index: tuple[CollectionItem, ...]
    queries: tuple[Gldv2Query, ...]
    skipped: tuple[str, ...]

    def by_usage(self, usage: Usage) -> tuple[Gldv2Query, ...]:
        return tuple(query for query in self.queries if query.usage == usage)


def has_gldv2_retrieval(root: Path) -> bool:
    """Whether ``root`` holds the three files of the retrieval benchmark."""
    root = Path(root)
    return all((root / name).is_file() for name in ("index.csv", "test.csv", SOLUTION_FILENAME))


def read_gldv2_retrieval(root: Path, solution: str = SOLUTION_FILENAME) -> Gldv2Retrieval:
    """Read index, test queries and solution at ``root``; ``Ignored`` queries are skipped silently."""
    root = Path(root).resolve()
    for name in ("index.csv", "test.csv", solution):
        if not (root / name).is_file():
            raise CollectionFormatError(f"{root} lacks {name}, needed for the GLDv2 retrieval benchmark")
    skipped: list[str] = []
    index_relpath = _read_ids(root, "index.csv", "index", skipped)
    test_relpath = _read_ids(root, "test.csv", "test", skipped)

    queries: list[Gldv2Query] = []
    for line, row in _csv_rows(root / solution, ("id", "images", "Usage")):
        where = f"{solution} line {line}"
        usage = row["Usage"]
        if usage not in _USAGES:
            raise CollectionFormatError(f"{where}: Usage {usage!r} is not one of {', '.join(_USAGES)}")
        if usage == "Ignored":
            continue
        image_id = row["id"]
        relpath = test_relpath.get(image_id)
        if relpath is None:
            skipped.append(f"query {image_id}: not in test.csv or file missing ({where})")
            continue
        wanted = [i for i in row["images"].split() if i != "None"]
        present = frozenset(index_relpath[i] for i in wanted if i in index_relpath)
        if len(present) < len(wanted):
            skipped.append(
                f"query {image_id}: {len(wanted) - len(present)} of {len(wanted)} positives missing"
            )
        if not present:
            skipped.append(f"query {image_id}: no relevant index image on disk, left out ({where})")
            continue
        queries.append(Gldv2Query(image_id, relpath, present, usage))
    index = tuple(
        CollectionItem(root / relpath, relpath, UNLABELLED, "index")
        for relpath in sorted(index_relpath.values())
    )
    return Gldv2Retrieval(index, tuple(sorted(queries, key=lambda q: q.image_id)), tuple(skipped))


def _read_ids(root: Path, filename: str, subdir: str, skipped: list[str]) -> dict[str, str]:
    """``id -> relpath`` of the rows of ``filename`` whose image is on disk."""
    found: dict[str, str] = {}
    for line, row in _csv_rows(root / filename, ("id",)):
        image_id = row["id"]
        if not _GLDV2_ID.match(image_id):
            raise CollectionFormatError(f"{filename} line {line}: {image_id!r} is not a GLDv2 image id")
        relpath = _gldv2_relpath(root, subdir, image_id)
        if relpath is None:
            skipped.append(f"{image_id}: file missing ({filename} line {line})")
            continue
        found[image_id] = relpath
    return found
