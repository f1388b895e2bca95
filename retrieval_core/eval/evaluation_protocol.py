"""A collection turned into an evaluation protocol: reported queries, an index, and validation queries.

Fusion weights and checkpoints are chosen on the validation queries, never on the reported ones (the
thesis tuned on its test queries). The protocol comes from the first source the collection has:

1. ``ground_truth.json`` at the root:
   ``{"queries": [{"image": ..., "positives": [...], "junk": [...]}], "validation": [...]}``.
   The index is every other image of the collection. Without a ``validation`` list, a seeded
   ``validation_fraction`` of the queries is held out for tuning and not reported. When positives are
   queries too (or ``"protocol": "leave_one_out"``), it is evaluated leave-one-out: the index is every
   image, and each query is searched against all the others with itself removed.
2. GLDv2 retrieval files (``index.csv``, ``test.csv``, ``retrieval_solution_v2.1.csv``): reported =
   ``Private`` queries, validation = ``Public`` queries (by default), one shared index.
3. ``labels.csv`` with ``split=query`` rows: those are the queries, every other image the index, positives
   the index images of the same landmark. ``split=validation`` rows, if any, are the validation queries;
   otherwise up to ``validation_per_landmark`` index images per landmark (seeded) are, searched against
   the index without them.
4. Otherwise ``split_by_landmark`` (seeded, by landmark; its training landmarks are left out entirely).

With ``ProtocolConfig.leave_one_out`` a labelled collection is evaluated leave-one-out instead: every
labelled image with another image of its landmark is a query against all the others (unlabelled images
stay as distractors), and a seeded ``validation_fraction`` of those queries is held out for tuning.
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from retrieval_core.datasets.collection import (
    UNLABELLED,
    CollectionFormatError,
    CollectionItem,
    _safe_relpath,
    read_collection_report,
)
from retrieval_core.datasets.gldv2_retrieval import Usage, has_gldv2_retrieval, read_gldv2_retrieval
from retrieval_core.eval.splits import SplitConfig, relevant_index_images, split_by_landmark

__all__ = [
    "GROUND_TRUTH_FILENAME",
    "EvalProtocol",
    "EvalQuery",
    "ProtocolConfig",
    "ProtocolSource",
    "QuerySet",
    "build_protocol",
    "parse_ground_truth",
]

GROUND_TRUTH_FILENAME = "ground_truth.json"
ProtocolSource = Literal["ground_truth_json", "gldv2", "labels_csv", "seeded_split", "leave_one_out"]


@dataclass(frozen=True)
class EvalQuery:
    """One query image (relpath) with the index relpaths that count as hits and those that do not count."""

    relpath: str
    positives: frozenset[str]
    junk: frozenset[str] = frozenset()


@dataclass(frozen=True)
class QuerySet:
    """Queries and the index relpaths they are searched against.

    ``leave_one_out``: the queries are images of the index too, and each is searched against all the
    others with itself removed (the natural protocol for GPS-only and Holidays-like sets).
    """

    queries: tuple[EvalQuery, ...]
    index: tuple[str, ...]
    leave_one_out: bool = False

    def __post_init__(self) -> None:
        index = set(self.index)
        if len(index) != len(self.index):
            raise ValueError("index lists an image twice")
        names = [query.relpath for query in self.queries]
        if len(set(names)) != len(names):
            raise ValueError("a query is listed twice")
        for query in self.queries:
            if query.relpath in index and not self.leave_one_out:
                raise ValueError(f"query {query.relpath} is also in its index")
            if self.leave_one_out and query.relpath in query.positives:
                raise ValueError(f"query {query.relpath} lists itself as a positive")
            if not query.positives <= index:
                raise ValueError(f"query {query.relpath} has positives outside its index")
            if query.positives & query.junk:
                raise ValueError(f"query {query.relpath} has images that are both positive and junk")


@dataclass(frozen=True)
class ProtocolConfig:
    """How queries are chosen where the collection does not say (see the module docstring)."""

    split: SplitConfig = field(default_factory=SplitConfig)
    seed: int = 0
    validation_per_landmark: int = 2
    validation_fraction: float = 0.2
    gldv2_reported: Usage = "Private"
    gldv2_validation: Usage = "Public"
    leave_one_out: bool = False

    def __post_init__(self) -> None:
        if self.validation_per_landmark < 0:
            raise ValueError("validation_per_landmark must be >= 0")
        if not 0 <= self.validation_fraction < 1:
            raise ValueError("validation_fraction must be in [0, 1)")
        if self.gldv2_reported == self.gldv2_validation:
            raise ValueError("GLDv2 reported and validation queries must be different halves")


@dataclass(frozen=True)
class EvalProtocol:
    """Reported queries and index, plus disjoint validation queries; image ``relpath`` is under ``root``."""

    root: Path
    source: ProtocolSource
    queries: tuple[EvalQuery, ...]
    index: tuple[str, ...]
    validation: QuerySet
    notes: tuple[str, ...] = field(default=())
    leave_one_out: bool = False

    def __post_init__(self) -> None:
        reported = self.reported  # validates queries against the index
        shared = {q.relpath for q in reported.queries} & {q.relpath for q in self.validation.queries}
        if shared:
            raise ValueError(f"{len(shared)} validation queries are reported queries too, e.g. {min(shared)}")

    @functools.cached_property
    def reported(self) -> QuerySet:
        return QuerySet(self.queries, self.index, self.leave_one_out)

    @functools.cached_property
    def images(self) -> tuple[str, ...]:
        """Every relpath the evaluation reads: queries of both sets and both indexes, sorted."""
        names = {*self.index, *self.validation.index}
        names.update(query.relpath for query in (*self.queries, *self.validation.queries))
        return tuple(sorted(names))

    def path(self, relpath: str) -> Path:
        return self.root / relpath

    def summary(self) -> str:
        mode = "leave-one-out, " if self.leave_one_out else ""
        return (
            f"{self.source}: {mode}{len(self.queries)} reported queries, {len(self.index)} index images; "
            f"{len(self.validation.queries)} validation queries on {len(self.validation.index)}"
        )


def build_protocol(root: Path, config: ProtocolConfig = ProtocolConfig()) -> EvalProtocol:
    """The protocol of the collection at ``root`` from its first available source (module docstring)."""
    root = Path(root).resolve()
    if (root / GROUND_TRUTH_FILENAME).is_file():
        return _from_ground_truth(root, config)
    if has_gldv2_retrieval(root):
        return _from_gldv2(root, config)
    report = read_collection_report(root)
    notes = tuple(report.skipped)
    if config.leave_one_out:
        return _leave_one_out(root, report.items, config, notes)
    if report.layout == "labels_csv" and any(item.split == "query" for item in report.items):
        return _from_labels(root, report.items, config, notes)
    split = split_by_landmark(report.items, config.split)
    reported = relevant_index_images(split.query, split.index)
    validation = relevant_index_images(split.validation, split.index)
    index = tuple(item.relpath for item in split.index)
    queries = _labelled_queries(reported, split.query)
    return EvalProtocol(
        root,
        "seeded_split",
        queries,
        index,
        QuerySet(_labelled_queries(validation, split.validation), index),
        (*notes, f"seeded split {config.split}; {len(split.train)} training images left out"),
    )


def parse_ground_truth(
    raw: Mapping[str, Any], images: Iterable[str]
) -> tuple[tuple[EvalQuery, ...], tuple[EvalQuery, ...] | None]:
    """``(queries, validation or None)`` of a loaded ``ground_truth.json``; paths must be in ``images``."""
    known = set(images)
    if not isinstance(raw, Mapping) or not isinstance(raw.get("queries"), list):
        raise CollectionFormatError(f"{GROUND_TRUTH_FILENAME} must be an object with a 'queries' list")
    queries = _parse_entries(raw["queries"], known, "queries")
    validation = raw.get("validation")
    if validation is None:
        return queries, None
    if not isinstance(validation, list):
        raise CollectionFormatError(f"{GROUND_TRUTH_FILENAME}: 'validation' must be a list")
    return queries, _parse_entries(validation, known, "validation")


def _parse_entries(entries: list[Any], known: set[str], where: str) -> tuple[EvalQuery, ...]:
    parsed: list[EvalQuery] = []
    for number, entry in enumerate(entries):
        place = f"{GROUND_TRUTH_FILENAME} {where}[{number}]"
        if not isinstance(entry, Mapping) or not isinstance(entry.get("image"), str):
            raise CollectionFormatError(f"{place}: needs an 'image' path")
        image = _safe_relpath(entry["image"], place)
        lists = {}
        for key in ("positives", "junk"):
            values = entry.get(key, [])
            if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
                raise CollectionFormatError(f"{place}: {key!r} must be a list of image paths")
            lists[key] = frozenset(_safe_relpath(v, place) for v in values)
        unknown = sorted(({image} | lists["positives"] | lists["junk"]) - known)
        if unknown:
            raise CollectionFormatError(f"{place}: {unknown[0]} is not an image of the collection")
        if image in lists["positives"]:
            raise CollectionFormatError(f"{place}: the query {image} lists itself as a positive")
        if lists["positives"] & lists["junk"]:
            raise CollectionFormatError(f"{place}: an image is both positive and junk")
        parsed.append(EvalQuery(image, lists["positives"], lists["junk"] - {image}))
    return tuple(parsed)


def _from_ground_truth(root: Path, config: ProtocolConfig) -> EvalProtocol:
    report = read_collection_report(root)
    images = [item.relpath for item in report.items]
    try:
        raw = json.loads((root / GROUND_TRUTH_FILENAME).read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise CollectionFormatError(f"{GROUND_TRUTH_FILENAME} is not valid JSON: {error}") from None
    queries, validation = parse_ground_truth(raw, images)
    notes = list(report.skipped)
    asked_all = {q.relpath for q in (*queries, *(validation or ()))}
    positives_asked = any(q.positives & asked_all for q in (*queries, *(validation or ())))
    leave_one_out = config.leave_one_out or raw.get("protocol") == "leave_one_out" or positives_asked
    if leave_one_out and not config.leave_one_out and raw.get("protocol") != "leave_one_out":
        notes.append("positives are queries too: evaluated leave-one-out (each query against all others)")
    if validation is None:
        held = _hash_order(config.seed, [q.relpath for q in queries])
        n_held = math.floor(len(queries) * config.validation_fraction)
        if config.validation_fraction > 0 and len(queries) >= 2:
            n_held = min(max(1, n_held), len(queries) - 1)
        chosen = set(held[:n_held])
        validation = tuple(q for q in queries if q.relpath in chosen)
        queries = tuple(q for q in queries if q.relpath not in chosen)
        notes.append(
            f"{len(validation)} of the ground-truth queries held out for validation (seed {config.seed})"
        )
    if leave_one_out:
        every = tuple(images)
        return EvalProtocol(
            root,
            "ground_truth_json",
            queries,
            every,
            QuerySet(validation, every, leave_one_out=True),
            tuple(notes),
            leave_one_out=True,
        )
    asked = {q.relpath for q in (*queries, *validation)}
    index = tuple(name for name in images if name not in asked)
    return EvalProtocol(root, "ground_truth_json", queries, index, QuerySet(validation, index), tuple(notes))


def _from_gldv2(root: Path, config: ProtocolConfig) -> EvalProtocol:
    data = read_gldv2_retrieval(root)
    index = tuple(item.relpath for item in data.index)

    def as_queries(usage: Usage) -> tuple[EvalQuery, ...]:
        return tuple(EvalQuery(q.relpath, q.positives) for q in data.by_usage(usage))

    notes = (
        *data.skipped,
        f"reported: {config.gldv2_reported} queries; validation: {config.gldv2_validation}",
    )
    validation = QuerySet(as_queries(config.gldv2_validation), index)
    return EvalProtocol(root, "gldv2", as_queries(config.gldv2_reported), index, validation, notes)


def _from_labels(
    root: Path, items: Sequence[CollectionItem], config: ProtocolConfig, notes: tuple[str, ...]
) -> EvalProtocol:
    queries = [item for item in items if item.split == "query"]
    marked_validation = [item for item in items if item.split == "validation"]
    index = [item for item in items if item.split not in ("query", "validation")]
    if marked_validation:
        validation_queries, validation_index = marked_validation, index
        how = "validation = split=validation rows"
    else:
        validation_queries = _validation_from_index(index, config)
        chosen = {item.relpath for item in validation_queries}
        validation_index = [item for item in index if item.relpath not in chosen]
        how = (
            f"validation = {len(chosen)} index images ({config.validation_per_landmark} per landmark, seeded)"
        )
    reported = _labelled_queries(relevant_index_images(queries, index), queries)
    validation = _labelled_queries(
        relevant_index_images(validation_queries, validation_index), validation_queries
    )
    dropped = len(queries) - len(reported)
    extra = [f"{dropped} queries without a same-landmark index image left out"] if dropped else []
    return EvalProtocol(
        root,
        "labels_csv",
        reported,
        tuple(item.relpath for item in index),
        QuerySet(validation, tuple(item.relpath for item in validation_index)),
        (*notes, how, *extra),
    )


def _leave_one_out(
    root: Path, items: Sequence[CollectionItem], config: ProtocolConfig, notes: tuple[str, ...]
) -> EvalProtocol:
    """Every labelled image with another image of its landmark is a query against all the others; a seeded
    ``validation_fraction`` of them are validation queries (tuned on, never reported)."""
    by_landmark: defaultdict[str, set[str]] = defaultdict(set)
    for item in items:
        if item.landmark != UNLABELLED:
            by_landmark[item.landmark].add(item.relpath)
    queries = [
        EvalQuery(item.relpath, frozenset(by_landmark[item.landmark] - {item.relpath}))
        for item in sorted(items, key=lambda item: item.relpath)
        if item.landmark != UNLABELLED and len(by_landmark[item.landmark]) > 1
    ]
    held = _hash_order(config.seed, [q.relpath for q in queries])
    n_held = math.floor(len(queries) * config.validation_fraction)
    if config.validation_fraction > 0 and len(queries) >= 2:
        n_held = min(max(1, n_held), len(queries) - 1)
    chosen = set(held[:n_held])
    index = tuple(sorted(item.relpath for item in items))
    return EvalProtocol(
        root,
        "leave_one_out",
        tuple(q for q in queries if q.relpath not in chosen),
        index,
        QuerySet(tuple(q for q in queries if q.relpath in chosen), index, leave_one_out=True),
        (
            *notes,
            f"leave-one-out: {len(chosen)} of {len(queries)} queries held out for validation "
            f"(seed {config.seed})",
        ),
        leave_one_out=True,
    )


def _validation_from_index(index: Sequence[CollectionItem], config: ProtocolConfig) -> list[CollectionItem]:
    """Up to ``validation_per_landmark`` images per labelled landmark, always leaving one as a positive."""
    by_landmark: defaultdict[str, list[CollectionItem]] = defaultdict(list)
    for item in index:
        if item.landmark != UNLABELLED:
            by_landmark[item.landmark].append(item)
    chosen: list[CollectionItem] = []
    for members in by_landmark.values():
        order = _hash_order(config.seed, [item.relpath for item in members])
        take = set(order[: min(config.validation_per_landmark, len(members) - 1)])
        chosen.extend(item for item in members if item.relpath in take)
    return sorted(chosen, key=lambda item: item.relpath)


def _labelled_queries(
    positives: Mapping[str, frozenset[str]], queries: Iterable[CollectionItem]
) -> tuple[EvalQuery, ...]:
    """Queries that have at least one positive (others cannot be scored), sorted by relpath."""
    return tuple(
        EvalQuery(item.relpath, positives[item.relpath])
        for item in sorted(queries, key=lambda item: item.relpath)
        if positives.get(item.relpath)
    )


def _hash_order(seed: int, names: Sequence[str]) -> list[str]:
    """``names`` in a seeded order that does not depend on their input order."""
    return sorted(
        names, key=lambda name: hashlib.sha256(f"{seed}\x00validation\x00{name}".encode()).hexdigest()
    )
