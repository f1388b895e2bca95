"""Training data mined from an unlabelled collection by geometric verification (the SfM-120k idea).

Radenović et al. trained their global descriptors without manual labels: positives are image pairs that a
camera-consistent transform explains, hard negatives are images the current descriptor finds similar but
that do not match. This module does the same with the product's own parts:

1. candidates: each image's ``neighbours`` nearest neighbours by global descriptor, through any
   `VectorIndex` (Milvus in the product, `ExactIndex` in evaluation); unordered pairs, deduplicated;
2. verification: RootSIFT matching + MAGSAC++ (`SiftScorer`, the served re-ranking code) on every
   candidate pair, in fixed chunks whose results are saved one file per chunk, so an interrupted run (or a
   worker that died) resumes where it stopped and chunks may run in parallel;
3. `summarise`: positives are pairs with at least ``min_inliers`` verified inliers; the connected
   components of that match graph are pseudo-landmarks. A curated label takes precedence: labelled images
   keep it, unlabelled members of a component take its label, and a verified pair that would join two
   different labels is not a positive (a conflict; pairs are merged strongest first). Hard negatives are
   candidates (high global similarity) with at most ``negative_max_inliers`` inliers that end in
   different pseudo-landmarks and, when both have GPS, lie more than ``min_negative_distance_m`` apart.

State directory layout: ``manifest.json`` (config, image ids, candidate pairs) and ``chunks/NNNNNN.json``
(verified pairs of one chunk). Image ids are ``str`` or ``int`` (relpaths or catalogue keys).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from collections import Counter, defaultdict
from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from retrieval_core.atomic import atomic_write
from retrieval_core.datasets.collection import UNLABELLED, CollectionItem
from retrieval_core.datasets.positions import distance_m
from retrieval_core.features.sift import LocalFeatures, SiftConfig
from retrieval_core.index.vector_index import VectorIndex
from retrieval_core.rerank.fusion import MatchEvidence
from retrieval_core.rerank.scorer import QueryFeatures
from retrieval_core.rerank.sift_scorer import LocalFeatureSource, SiftScorer, VerificationConfig

__all__ = [
    "MINED_PREFIX",
    "CandidatePair",
    "MinedPair",
    "MiningConfig",
    "MiningResult",
    "MiningState",
    "Progress",
    "candidate_pairs",
    "mine",
    "summarise",
    "verify_pairs",
]

ImageKey = str | int
Progress = Callable[[str, int, int], None]
"""``progress(stage, done, total)``; stages ``"candidates"`` and ``"verification"``."""
GeoPoint = tuple[float, float]
"""``(latitude, longitude)`` in degrees."""

MINED_PREFIX = "mined-"
"""Name prefix of pseudo-landmarks without a curated label: ``mined-0001`` (largest first)."""
_MANIFEST = "manifest.json"
_FORMAT = 1


@dataclass(frozen=True)
class MiningConfig:
    """Everything that decides what is mined.

    Attributes:
        neighbours: candidates per image (global nearest neighbours, itself excluded).
        min_inliers: T: a pair with at least this many verified inliers is a positive. Unrelated photos
            reach about 8 homography inliers by chance (`FusionConfig.min_inliers`); 15 leaves a margin.
        negative_max_inliers: a candidate with at most this many inliers has "no verified match".
        min_negative_distance_m: D: when both images have GPS, a hard negative must be farther apart.
        negatives_per_image: keep at most this many hard negatives per image, the most similar first.
        min_component_size: smaller pseudo-landmarks are not trained on (a single image has no positive).
        chunk_pairs: candidate pairs verified per chunk (the unit of resumption and of a Celery task).
        verification: matching and geometry settings (homography by default: its chance level is lower
            than the fundamental matrix's, and a false positive merges two landmarks).
        sift: query-side SIFT settings the scorer would extract with; mining always passes stored
            features, so it only matters for the scorer's construction.
    """

    neighbours: int = 20
    min_inliers: int = 15
    negative_max_inliers: int = 8
    min_negative_distance_m: float = 500.0
    negatives_per_image: int = 5
    min_component_size: int = 2
    chunk_pairs: int = 500
    verification: VerificationConfig = field(default_factory=VerificationConfig)
    sift: SiftConfig = field(default_factory=SiftConfig)

    def __post_init__(self) -> None:
        if self.neighbours < 1:
            raise ValueError(f"neighbours must be at least 1, got {self.neighbours}")
        if self.min_inliers < 1:
            raise ValueError(f"min_inliers must be at least 1, got {self.min_inliers}")
        if not 0 <= self.negative_max_inliers < self.min_inliers:
            raise ValueError(
                f"negative_max_inliers must be in [0, min_inliers), got {self.negative_max_inliers}"
            )
        if self.min_negative_distance_m < 0 or self.negatives_per_image < 0:
            raise ValueError("min_negative_distance_m and negatives_per_image must not be negative")
        if self.min_component_size < 2:
            raise ValueError(f"min_component_size must be at least 2, got {self.min_component_size}")
        if self.chunk_pairs < 1:
            raise ValueError(f"chunk_pairs must be at least 1, got {self.chunk_pairs}")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> MiningConfig:
        values = dict(values)
        values["verification"] = VerificationConfig(**values.get("verification", {}))
        values["sift"] = SiftConfig(**values.get("sift", {}))
        return cls(**values)


@dataclass(frozen=True)
class CandidatePair:
    """Images ``a < b`` (positions in the mined ids) and their global cosine similarity."""

    a: int
    b: int
    similarity: float


@dataclass(frozen=True)
class MinedPair:
    """A verified candidate: ``inliers`` None when either image has no usable local features."""

    a: int
    b: int
    similarity: float
    inliers: int | None
    matches: int = 0


# -- candidates ------------------------------------------------------------------------------------------


def candidate_pairs(
    ids: Sequence[ImageKey],
    index: VectorIndex,
    config: MiningConfig,
    *,
    exclude: Iterable[ImageKey] = (),
    batch_size: int = 256,
    progress: Progress | None = None,
) -> list[CandidatePair]:
    """Each image's ``config.neighbours`` nearest neighbours in ``index`` among ``ids``, as unordered pairs.

    ``ids`` must be stored in ``index`` (an id without a vector is skipped); hits outside ``ids`` and
    ``exclude`` (held-out images) are never paired. Sorted by ``(a, b)``.
    """
    position = {image_id: i for i, image_id in enumerate(ids)}
    if len(position) != len(ids):
        raise ValueError("image ids must be unique")
    excluded = list(dict.fromkeys(exclude))
    best: dict[tuple[int, int], float] = {}
    for start in range(0, len(ids), batch_size):
        chunk = list(ids[start : start + batch_size])
        stored = index.get_vectors(chunk)
        queries = [image_id for image_id in chunk if image_id in stored]
        if queries:
            vectors = np.stack([np.asarray(stored[q], np.float32) for q in queries])
            hits = index.search(vectors, k=config.neighbours + 1, exclude_ids=excluded)
            for query, row in zip(queries, hits, strict=True):
                a = position[query]
                taken = 0
                for hit in row:
                    b = position.get(hit.image_id)  # type: ignore[call-overload]
                    if b is None or b == a:
                        continue
                    key = (min(a, b), max(a, b))
                    best[key] = max(best.get(key, -np.inf), float(hit.score))
                    taken += 1
                    if taken == config.neighbours:
                        break
        if progress is not None:
            progress("candidates", min(start + batch_size, len(ids)), len(ids))
    return [CandidatePair(a, b, s) for (a, b), s in sorted(best.items())]


# -- verification ----------------------------------------------------------------------------------------


class _Preloaded:
    """A `LocalFeatureSource` over features already loaded for one chunk."""

    def __init__(self, features: Mapping[Hashable, LocalFeatures]) -> None:
        self.features = features

    def load_many(self, image_ids: Sequence[Hashable]) -> Mapping[Hashable, LocalFeatures]:
        return {i: self.features[i] for i in image_ids if i in self.features}


def verify_pairs(
    pairs: Sequence[CandidatePair],
    ids: Sequence[ImageKey],
    features: LocalFeatureSource,
    config: MiningConfig,
) -> list[MinedPair]:
    """Verified inliers of each pair, by the served SIFT scorer (`SiftScorer`), in the order given.

    ``features.load_many(image_ids)`` supplies stored local features; an image without them (or without
    keypoints) gives ``inliers=None``: unknown, neither a positive nor a negative.
    """
    needed = sorted({ids[p.a] for p in pairs} | {ids[p.b] for p in pairs}, key=str)
    loaded = dict(features.load_many(needed))
    scorer = SiftScorer(
        _Preloaded(loaded), config.sift, config.verification, min_inliers=config.negative_max_inliers
    )
    by_first: defaultdict[int, list[int]] = defaultdict(list)
    for n, pair in enumerate(pairs):
        by_first[pair.a].append(n)
    out: list[MinedPair | None] = [None] * len(pairs)
    for a, members in by_first.items():
        mine_ = loaded.get(ids[a])
        if mine_ is None or len(mine_) == 0:
            for n in members:
                out[n] = MinedPair(pairs[n].a, pairs[n].b, pairs[n].similarity, None)
            continue
        query = QueryFeatures(vector=np.zeros(0, np.float32), sift=mine_)
        scores = scorer.score(query, [ids[pairs[n].b] for n in members])
        evidence = scores.evidence or [None] * len(members)
        for n, raw, ev in zip(members, scores.raw, evidence, strict=True):
            pair = pairs[n]
            inliers = None if np.isnan(raw) else int(raw)
            out[n] = MinedPair(pair.a, pair.b, pair.similarity, inliers, _matches(ev))
    return [pair for pair in out if pair is not None]


def _matches(evidence: MatchEvidence | None) -> int:
    return 0 if evidence is None else int(evidence.tentative_matches)


# -- resumable state -------------------------------------------------------------------------------------


class MiningState:
    """The on-disk state of one mining job: manifest (config, ids, candidates) and one file per chunk."""

    def __init__(
        self, directory: Path, config: MiningConfig, ids: tuple[ImageKey, ...], pairs: list[CandidatePair]
    ) -> None:
        self.directory = directory
        self.config = config
        self.ids = ids
        self.pairs = pairs

    @property
    def n_chunks(self) -> int:
        return math.ceil(len(self.pairs) / self.config.chunk_pairs)

    def chunk(self, number: int) -> list[CandidatePair]:
        if not 0 <= number < max(self.n_chunks, 1):
            raise ValueError(f"chunk {number} outside 0..{self.n_chunks - 1}")
        size = self.config.chunk_pairs
        return self.pairs[number * size : (number + 1) * size]

    def _chunk_path(self, number: int) -> Path:
        return self.directory / "chunks" / f"{number:06d}.json"

    def done_chunks(self) -> set[int]:
        return {n for n in range(self.n_chunks) if self._chunk_path(n).is_file()}

    @property
    def complete(self) -> bool:
        return len(self.done_chunks()) == self.n_chunks

    def run_chunk(self, number: int, features: LocalFeatureSource) -> bool:
        """Verify chunk ``number`` unless already saved (idempotent); True when it was computed now."""
        path = self._chunk_path(number)
        if path.is_file():
            return False
        verified = verify_pairs(self.chunk(number), self.ids, features, self.config)
        rows = [[p.a, p.b, p.similarity, p.inliers, p.matches] for p in verified]
        atomic_write(path, lambda handle: handle.write(json.dumps(rows).encode()))
        return True

    def verified(self) -> list[MinedPair]:
        """Every saved chunk's pairs, in candidate order."""
        out: list[MinedPair] = []
        for number in sorted(self.done_chunks()):
            rows = json.loads(self._chunk_path(number).read_text())
            out += [
                MinedPair(int(a), int(b), float(s), None if i is None else int(i), int(m))
                for a, b, s, i, m in rows
            ]
        return out

    def with_threshold(self, min_inliers: int) -> MiningState:
        """The same verified pairs summarised at another positive threshold, without verifying again
        (verification stores raw inlier counts; ``min_inliers`` only decides `summarise`)."""
        config = dataclasses.replace(self.config, min_inliers=min_inliers)
        return MiningState(self.directory, config, self.ids, self.pairs)

    # -- manifest --

    @classmethod
    def open(cls, directory: Path) -> MiningState:
        """A state written by `create`; ``FileNotFoundError`` if there is none."""
        raw = json.loads((Path(directory) / _MANIFEST).read_text())
        if raw.get("format") != _FORMAT:
            raise ValueError(f"{directory} holds mining state of an unknown format {raw.get('format')!r}")
        pairs = [CandidatePair(int(a), int(b), float(s)) for a, b, s in raw["pairs"]]
        return cls(Path(directory), MiningConfig.from_dict(raw["config"]), tuple(raw["ids"]), pairs)

    @classmethod
    def create(
        cls, directory: Path, config: MiningConfig, ids: Sequence[ImageKey], pairs: list[CandidatePair]
    ) -> MiningState:
        directory = Path(directory)
        manifest = {
            "format": _FORMAT,
            "config": config.to_dict(),
            "ids_digest": ids_digest(ids),
            "ids": list(ids),
            "pairs": [[p.a, p.b, p.similarity] for p in pairs],
        }
        atomic_write(directory / _MANIFEST, lambda handle: handle.write(json.dumps(manifest).encode()))
        return cls(directory, config, tuple(ids), pairs)

    @classmethod
    def prepare(
        cls,
        directory: Path,
        ids: Sequence[ImageKey],
        index: VectorIndex,
        config: MiningConfig,
        *,
        exclude: Iterable[ImageKey] = (),
        progress: Progress | None = None,
    ) -> MiningState:
        """Open the job at ``directory`` if it mines the same ids with the same config, else start it
        (candidate search); a different job already there is an error, never silently mixed."""
        directory = Path(directory)
        held_out = set(exclude)
        kept = [image_id for image_id in ids if image_id not in held_out]
        if (directory / _MANIFEST).is_file():
            state = cls.open(directory)
            if state.config != config or list(state.ids) != kept:
                raise ValueError(f"{directory} holds a mining job with other images or settings")
            return state
        pairs = candidate_pairs(kept, index, config, exclude=held_out, progress=progress)
        return cls.create(directory, config, kept, pairs)


def ids_digest(ids: Sequence[ImageKey]) -> str:
    digest = hashlib.sha256()
    for image_id in ids:
        digest.update(f"{image_id!r}\x00".encode())
    return digest.hexdigest()


def mine(
    directory: Path,
    ids: Sequence[ImageKey],
    index: VectorIndex,
    features: LocalFeatureSource,
    config: MiningConfig = MiningConfig(),
    *,
    exclude: Iterable[ImageKey] = (),
    labels: Mapping[ImageKey, str] | None = None,
    gps: Mapping[ImageKey, GeoPoint] | None = None,
    progress: Progress | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> MiningResult | None:
    """Candidates, chunked verification (resuming saved chunks) and `summarise`, in one process.

    Returns None when ``should_stop`` ended it early (calling again resumes). ``exclude``: images that must
    not contribute a pair or a negative (held-out evaluation queries and their positives).
    """
    state = MiningState.prepare(directory, ids, index, config, exclude=exclude, progress=progress)
    done = state.done_chunks()
    for number in range(state.n_chunks):
        if number in done:
            continue
        if should_stop is not None and should_stop():
            return None
        state.run_chunk(number, features)
        done.add(number)
        if progress is not None:
            progress("verification", len(done), state.n_chunks)
    return summarise(state, labels=labels, gps=gps)


# -- summary ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class MiningResult:
    """What mining found.

    Attributes:
        ids: the mined images (held-out ones are absent).
        labels: pseudo-landmark of every covered image (curated label, inherited label or ``mined-NNNN``);
            images in no pseudo-landmark of at least ``min_component_size`` are absent.
        positives: verified pairs ``(id_a, id_b, inliers)`` (both ends keep the same pseudo-landmark).
        negatives: hard negatives ``(id_a, id_b, similarity)``.
        statistics: counts for reports (see `summarise`).
    """

    ids: tuple[ImageKey, ...]
    labels: dict[ImageKey, str]
    positives: tuple[tuple[ImageKey, ImageKey, int], ...]
    negatives: tuple[tuple[ImageKey, ImageKey, float], ...]
    statistics: dict[str, Any]

    @property
    def components(self) -> dict[str, list[ImageKey]]:
        """Pseudo-landmark -> its images, largest first."""
        groups: defaultdict[str, list[ImageKey]] = defaultdict(list)
        for image_id in self.ids:
            if image_id in self.labels:
                groups[self.labels[image_id]].append(image_id)
        return dict(sorted(groups.items(), key=lambda kv: (-len(kv[1]), kv[0])))

    def training_items(self, paths: Mapping[ImageKey, Path]) -> list[CollectionItem]:
        """Covered images as labelled `CollectionItem`s (relpath = the id as text), in id order."""
        return [
            CollectionItem(Path(paths[i]), str(i), self.labels[i], None) for i in self.ids if i in self.labels
        ]

    def to_dict(self) -> dict[str, Any]:
        return {
            "ids": list(self.ids),
            "labels": [[i, label] for i, label in self.labels.items()],
            "positives": [list(p) for p in self.positives],
            "negatives": [list(n) for n in self.negatives],
            "statistics": self.statistics,
        }

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> MiningResult:
        return cls(
            ids=tuple(raw["ids"]),
            labels={i: str(label) for i, label in raw["labels"]},
            positives=tuple((a, b, int(n)) for a, b, n in raw["positives"]),
            negatives=tuple((a, b, float(s)) for a, b, s in raw["negatives"]),
            statistics=dict(raw["statistics"]),
        )


def summarise(
    state: MiningState,
    *,
    labels: Mapping[ImageKey, str] | None = None,
    gps: Mapping[ImageKey, GeoPoint] | None = None,
) -> MiningResult:
    """Positives, pseudo-landmarks and hard negatives from a (complete or partial) state; see the module
    docstring for the rules. ``labels``: curated landmark per image (absent or ``""`` = unlabelled);
    ``gps``: ``(lat, lon)`` per image that has it.

    Statistics: ``images``, ``candidate_pairs``, ``verified_pairs``, ``unverifiable_pairs`` (no local
    features), ``positive_pairs``, ``label_conflicts``, ``negative_pairs``, ``negatives_too_close`` (rejected
    by GPS), ``components``, ``covered_images``, ``coverage``, ``component_sizes`` (largest first),
    ``labelled_components`` and ``chunks_done`` / ``chunks``.
    """
    config, ids = state.config, state.ids
    curated = {i: label for i, label in (labels or {}).items() if label != UNLABELLED}
    gps = gps or {}
    verified = state.verified()
    parent = list(range(len(ids)))

    def find(x: int) -> int:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    # Curated label of each component (by its root): a merge that would join two labels is refused.
    component_label = {i: curated.get(image_id) for i, image_id in enumerate(ids)}
    positives: list[MinedPair] = []
    conflicts = 0
    strongest_first = sorted(verified, key=lambda p: (-(p.inliers or 0), p.a, p.b))
    for pair in strongest_first:
        if pair.inliers is None or pair.inliers < config.min_inliers:
            continue
        ra, rb = find(pair.a), find(pair.b)
        la, lb = component_label[ra], component_label[rb]
        if la is not None and lb is not None and la != lb:
            conflicts += 1
            continue
        positives.append(pair)
        if ra != rb:
            parent[ra] = rb
            component_label[rb] = lb if lb is not None else la

    final = _pseudo_labels(ids, [find(i) for i in range(len(ids))], curated, config.min_component_size)
    kept_positives = tuple(
        (ids[p.a], ids[p.b], int(p.inliers or 0))
        for p in positives
        if final.get(ids[p.a]) is not None and final.get(ids[p.a]) == final.get(ids[p.b])
    )

    negatives: list[tuple[ImageKey, ImageKey, float]] = []
    too_close = 0
    per_image: Counter[int] = Counter()
    for pair in sorted(verified, key=lambda p: (-p.similarity, p.a, p.b)):
        if pair.inliers is None or pair.inliers > config.negative_max_inliers:
            continue
        a, b = ids[pair.a], ids[pair.b]
        if find(pair.a) == find(pair.b) or (final.get(a) is not None and final.get(a) == final.get(b)):
            continue
        if a in gps and b in gps and distance_m(gps[a], gps[b]) <= config.min_negative_distance_m:
            too_close += 1
            continue
        limit = config.negatives_per_image
        if per_image[pair.a] >= limit or per_image[pair.b] >= limit:
            continue
        per_image[pair.a] += 1
        per_image[pair.b] += 1
        negatives.append((a, b, pair.similarity))

    sizes = sorted(Counter(final.values()).values(), reverse=True)
    covered = sum(sizes)
    statistics: dict[str, Any] = {
        "images": len(ids),
        "candidate_pairs": len(state.pairs),
        "verified_pairs": sum(p.inliers is not None for p in verified),
        "unverifiable_pairs": sum(p.inliers is None for p in verified),
        "positive_pairs": len(kept_positives),
        "label_conflicts": conflicts,
        "negative_pairs": len(negatives),
        "negatives_too_close": too_close,
        "components": len(sizes),
        "covered_images": covered,
        "coverage": covered / len(ids) if ids else 0.0,
        "component_sizes": sizes,
        "labelled_components": len({label for label in final.values() if not label.startswith(MINED_PREFIX)}),
        "chunks_done": len(state.done_chunks()),
        "chunks": state.n_chunks,
        "min_inliers": config.min_inliers,
    }
    return MiningResult(ids, final, kept_positives, tuple(negatives), statistics)


def _pseudo_labels(
    ids: Sequence[ImageKey], roots: Sequence[int], curated: Mapping[ImageKey, str], min_size: int
) -> dict[ImageKey, str]:
    """Curated label if any; else the majority curated label of the component; else ``mined-NNNN``.

    Groups (by final label) smaller than ``min_size`` are dropped. Unlabelled components are numbered by
    size, largest first, ties by their first image, so names are stable for the same input.
    """
    members: defaultdict[int, list[int]] = defaultdict(list)
    for position, root in enumerate(roots):
        members[root].append(position)
    label: dict[ImageKey, str] = {}
    unlabelled: list[list[int]] = []
    for group in members.values():
        votes = Counter(curated[ids[p]] for p in group if ids[p] in curated)
        if votes:
            majority = min(votes, key=lambda name: (-votes[name], name))
            for p in group:
                label[ids[p]] = curated.get(ids[p], majority)
        elif len(group) >= min_size:
            unlabelled.append(group)
    for number, group in enumerate(sorted(unlabelled, key=lambda g: (-len(g), g[0])), start=1):
        for p in group:
            label[ids[p]] = f"{MINED_PREFIX}{number:04d}"
    sizes = Counter(label.values())
    return {i: name for i, name in label.items() if sizes[name] >= min_size}

