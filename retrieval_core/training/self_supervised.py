"""The ``self`` recipe around mining: validation from mined pairs, held-out evaluation images, agreement.

- `mined_split`: pseudo-landmarks become training items; whole components are held out for validation
  (checkpoint selection by mAP@100 on mined pairs the model never trained on). Validation is scored like
  the real leave-one-out evaluation: every member of a held-out component is a query, searched against
  the whole mined collection (its own component mates are the positives; every other photo, covered by
  mining or not, is a distractor), so a model that pulls verified pairs together while scrambling the
  rest of the collection loses, as it loses on the real figure.
- `held_out_images`: what an honest evaluation keeps away from mining: the reported queries, their
  positives and junk (by image) and, where labels or GPS allow, everything of the same landmark or within a
  radius of them (by component).
- `cluster_agreement`: adjusted Rand index and purity of mined components against known landmarks.
"""

from __future__ import annotations

import hashlib
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from sklearn.metrics import adjusted_rand_score

from retrieval_core.datasets.collection import UNLABELLED, CollectionItem
from retrieval_core.datasets.positions import distance_m
from retrieval_core.eval.evaluation_protocol import EvalQuery
from retrieval_core.training.pair_mining import GeoPoint, ImageKey, MiningResult

__all__ = ["Agreement", "MinedSplit", "cluster_agreement", "held_out_images", "mined_split"]


@dataclass(frozen=True)
class MinedSplit:
    """Training items (pseudo-landmark labels) and the mined validation set."""

    train: list[CollectionItem]
    val_queries: list[CollectionItem]
    val_index: list[CollectionItem]

    @property
    def landmarks(self) -> int:
        return len({item.landmark for item in self.train})


def _hash(seed: int, kind: str, key: object) -> str:
    return hashlib.sha256(f"{seed}\x00{kind}\x00{key}".encode()).hexdigest()


def mined_split(
    result: MiningResult,
    paths: Mapping[ImageKey, Path],
    *,
    seed: int = 0,
    validation_fraction: float = 0.2,
    queries_per_component: int | None = None,
    distractors: int = 4000,
) -> MinedSplit:
    """Training and validation items from a mining result (``paths``: file of every id in ``result.ids``).

    A seeded ``validation_fraction`` of the pseudo-landmarks (at least one, and never so many that fewer
    than two remain to train on) is held out whole. In each, every image is a query searched against the
    others (leave-one-out, None) or ``queries_per_component`` images are queries and the rest their
    positives. The validation index adds the queries' hard-negative partners and up to ``distractors``
    other images of the collection (seeded; training images under their own pseudo-landmark, images no
    pair covered as unlabelled), which never count as hits. Raises ``ValueError`` when fewer than three
    pseudo-landmarks were mined.
    """
    if not 0 < validation_fraction < 1:
        raise ValueError(f"validation_fraction must be in (0, 1), got {validation_fraction}")
    components = result.components
    if len(components) < 3:
        raise ValueError(
            f"mining found {len(components)} pseudo-landmark(s); at least 3 are needed to train and validate "
            "(lower min_inliers, raise neighbours, or add photos)"
        )
    order = sorted(components, key=lambda name: _hash(seed, "component", name))
    n_val = min(max(1, round(validation_fraction * len(order))), len(order) - 2)
    validation = set(order[:n_val])

    def item(image_id: ImageKey, label: str | None = None) -> CollectionItem:
        landmark = result.labels.get(image_id, UNLABELLED) if label is None else label
        return CollectionItem(Path(paths[image_id]), str(image_id), landmark, None)

    train = [item(i) for name in order[n_val:] for i in components[name]]
    queries: list[CollectionItem] = []
    index: list[CollectionItem] = []
    for name in sorted(validation):
        members = sorted(components[name], key=lambda i: _hash(seed, "image", i))
        if queries_per_component is None:  # leave-one-out: the queries are in the index too
            queries += [item(i) for i in members]
            index += [item(i) for i in members]
        else:
            queries += [item(i) for i in members[:queries_per_component]]
            index += [item(i) for i in members[queries_per_component:]]
    query_names = {q.relpath for q in queries}
    chosen = query_names | {i.relpath for i in index}
    partners: list[ImageKey] = []
    for a, b, _ in result.negatives:
        for query, other in ((a, b), (b, a)):
            if str(query) in query_names and str(other) not in chosen:
                partners.append(other)
                chosen.add(str(other))
    index += [item(i) for i in partners]
    others = [item(i) for i in result.ids if str(i) not in chosen]
    index += sorted(others, key=lambda t: _hash(seed, "distractor", t.relpath))[:distractors]
    return MinedSplit(_by_relpath(train), _by_relpath(queries), _by_relpath(index))


def _by_relpath(items: Iterable[CollectionItem]) -> list[CollectionItem]:
    return sorted(items, key=lambda item: item.relpath)


def held_out_images(
    queries: Iterable[EvalQuery],
    *,
    labels: Mapping[str, str] | None = None,
    gps: Mapping[str, GeoPoint] | None = None,
    radius_m: float = 500.0,
) -> frozenset[str]:
    """Images that must never contribute a mined pair or negative when ``queries`` are reported.

    By image: the queries, their positives and junk. By component where the data allows: every image with
    the landmark label of one of those, and every image with GPS within ``radius_m`` of one of those that
    has GPS (the same place, even if unlabelled).
    """
    held = set()
    for query in queries:
        held |= {query.relpath, *query.positives, *query.junk}
    labels = labels or {}
    held_labels = {labels[i] for i in held if labels.get(i, UNLABELLED) != UNLABELLED}
    held |= {i for i, label in labels.items() if label in held_labels}
    if gps:
        anchors = [gps[i] for i in held if i in gps]
        held |= {i for i, point in gps.items() if any(distance_m(point, a) <= radius_m for a in anchors)}
    return frozenset(held)


@dataclass(frozen=True)
class Agreement:
    """How well mined components match known landmarks, over the images given a truth.

    adjusted_rand: ARI of the partition (uncovered images count as singletons); purity: share of covered
    images whose component's majority landmark is theirs; coverage: share of images covered.
    """

    adjusted_rand: float
    purity: float
    coverage: float


def cluster_agreement(truth: Mapping[ImageKey, str], result: MiningResult) -> Agreement:
    """`Agreement` of ``result.labels`` with ``truth`` (image -> landmark) over ``truth``'s images."""
    images: Sequence[ImageKey] = sorted(truth, key=str)
    predicted = [result.labels.get(i, f"\x00single:{i}") for i in images]
    ari = float(adjusted_rand_score([truth[i] for i in images], predicted))
    groups: defaultdict[str, list[str]] = defaultdict(list)
    for i in images:
        if i in result.labels:
            groups[result.labels[i]].append(truth[i])
    covered = sum(len(g) for g in groups.values())
    pure = sum(Counter(g).most_common(1)[0][1] for g in groups.values())
    return Agreement(ari, pure / covered if covered else 0.0, covered / len(images) if images else 0.0)
