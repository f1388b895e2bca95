"""Seeded split of a collection into train / validation / query / index, for collections without one.

The rule (deterministic for a seed, independent of item order):

1. Labelled landmarks are ordered by ``sha256(seed, landmark)``. The first ``floor(n * train_fraction)``
   are training landmarks, the next ``round(n * validation_fraction)`` (at least one when the fraction is
   positive and two or more landmarks remain) are validation landmarks, the rest are test landmarks.
   Training landmarks never appear in evaluation, so the model is not scored on what it was trained on.
2. In every validation or test landmark with more than ``queries_per_landmark`` images, the first
   ``queries_per_landmark`` images by ``sha256(seed, relpath)`` become queries (``validation`` or
   ``query``); all other images, and all images of smaller landmarks, go to the shared ``index``. So every
   query has at least one relevant index image, and validation queries (for choosing checkpoints and fusion
   weights) are different images of different landmarks from the reported queries.
3. Unlabelled images (GLDv2 index without labels) go to the index as distractors.

Ordering by hash rather than by a shuffled list keeps most assignments when landmarks or images are added.
A collection's own ``split`` column is ignored here; use it directly when it exists.
"""

from __future__ import annotations

import hashlib
import math
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass

from retrieval_core.datasets.collection import UNLABELLED, CollectionItem


@dataclass(frozen=True)
class SplitConfig:
    seed: int = 0
    train_fraction: float = 0.5
    validation_fraction: float = 0.1
    queries_per_landmark: int = 1

    def __post_init__(self) -> None:
        if not (0 <= self.train_fraction < 1 and 0 <= self.validation_fraction < 1):
            raise ValueError("train_fraction and validation_fraction must be in [0, 1)")
        if self.train_fraction + self.validation_fraction >= 1:
            raise ValueError("train_fraction + validation_fraction must leave landmarks for the test queries")
        if self.queries_per_landmark < 1:
            raise ValueError("queries_per_landmark must be at least 1")


@dataclass(frozen=True)
class CollectionSplit:
    """Items per role, each tuple sorted by ``relpath``."""

    train: tuple[CollectionItem, ...]
    validation: tuple[CollectionItem, ...]
    query: tuple[CollectionItem, ...]
    index: tuple[CollectionItem, ...]

    def role_of(self) -> dict[str, str]:
        """``relpath -> "train" | "validation" | "query" | "index"``."""
        return {
            item.relpath: role
            for role in ("train", "validation", "query", "index")
            for item in getattr(self, role)
        }


def _hash_key(seed: int, kind: str, key: str) -> str:
    return hashlib.sha256(f"{seed}\x00{kind}\x00{key}".encode()).hexdigest()


def split_by_landmark(
    items: Iterable[CollectionItem], config: SplitConfig = SplitConfig()
) -> CollectionSplit:
    """Assign every item one role by the rule in the module docstring."""
    by_landmark: dict[str, list[CollectionItem]] = defaultdict(list)
    for item in items:
        by_landmark[item.landmark].append(item)
    unlabelled = by_landmark.pop(UNLABELLED, [])
    landmarks = sorted(by_landmark, key=lambda name: _hash_key(config.seed, "landmark", name))
    n = len(landmarks)
    n_train = math.floor(n * config.train_fraction)
    n_validation = round(n * config.validation_fraction)
    if config.validation_fraction > 0 and n - n_train >= 2:
        n_validation = max(1, n_validation)
    n_validation = min(n_validation, max(0, n - n_train - 1))

    roles: dict[str, list[CollectionItem]] = {"train": [], "validation": [], "query": [], "index": []}
    roles["index"].extend(unlabelled)
    for position, landmark in enumerate(landmarks):
        members = by_landmark[landmark]
        if position < n_train:
            roles["train"].extend(members)
            continue
        query_role = "validation" if position < n_train + n_validation else "query"
        if len(members) <= config.queries_per_landmark:
            roles["index"].extend(members)
            continue
        members = sorted(members, key=lambda item: _hash_key(config.seed, "image", item.relpath))
        roles[query_role].extend(members[: config.queries_per_landmark])
        roles["index"].extend(members[config.queries_per_landmark :])
    return CollectionSplit(**{role: _sorted(members) for role, members in roles.items()})


def relevant_index_images(
    queries: Iterable[CollectionItem], index: Iterable[CollectionItem]
) -> dict[str, frozenset[str]]:
    """``query relpath -> relpaths of index images of the same landmark`` (ground truth for mAP@k).

    Unlabelled images are relevant to nothing; a query never counts itself as relevant.
    """
    members: defaultdict[str, list[str]] = defaultdict(list)
    for item in index:
        if item.landmark != UNLABELLED:
            members[item.landmark].append(item.relpath)
    return {
        query.relpath: frozenset(members.get(query.landmark, ())) - {query.relpath}
        for query in queries
        if query.landmark != UNLABELLED
    }


def _sorted(items: Iterable[CollectionItem]) -> tuple[CollectionItem, ...]:
    return tuple(sorted(items, key=lambda item: item.relpath))


def split_within_landmarks(
    items: Iterable[CollectionItem], seed: int = 0, val_queries: int = 2, val_index: int = 4
) -> tuple[list[CollectionItem], list[CollectionItem], list[CollectionItem]]:
    """(train, validation queries, validation index) by image inside each landmark.

    For collections with too few landmarks to split by landmark (e.g. 7): per landmark, the first
    ``val_queries`` + ``val_index`` images by a seeded hash are held out for validation (checkpoint and
    fusion-weight selection), the rest are trained on. Unlabelled images are left out. Sorted by relpath.
    """
    by_landmark: dict[str, list[CollectionItem]] = defaultdict(list)
    for item in items:
        if item.landmark != UNLABELLED:
            by_landmark[item.landmark].append(item)
    train, queries, index = [], [], []
    for landmark in sorted(by_landmark):
        members = sorted(by_landmark[landmark], key=lambda i: _hash_key(seed, "image", i.relpath))
        queries += members[:val_queries]
        index += members[val_queries : val_queries + val_index]
        train += members[val_queries + val_index :]

    def by_path(item: CollectionItem) -> str:
        return item.relpath

    return sorted(train, key=by_path), sorted(queries, key=by_path), sorted(index, key=by_path)
