"""The collection's match graph, served: verified matches between collection photos, found when they are
indexed, read by the search (`retrieval_core.search.match_graph`).

When a batch's local features are stored (and ``RERANK_GRAPH_VERIFICATION`` > 0), each photo is verified
against its ``RERANK_GRAPH_NEIGHBOURS`` nearest neighbours in the active model's collection with the
served verifier; matches with at least ``RERANK_MIN_INLIERS`` inliers (the chance level) are stored, and
the search reads those with at least ``RERANK_GRAPH_VERIFICATION``. A later photo links itself to the
earlier ones, so the graph grows as photos arrive; ``manage.py build_match_graph`` builds it for a
collection indexed before it was turned on (or after the SIFT settings changed: edges belong to one
SIFT store).
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable, Hashable, Sequence
from typing import TypedDict

import numpy as np
from django.conf import settings
from django.db import transaction
from django.db.models import Q, QuerySet

from retrieval_core.index.protocol import integer_id
from retrieval_core.search.match_graph import MatchEdge, verify_edges
from webapp.catalog.models import Image
from webapp.embeddings.services import get_active_version, get_store
from webapp.reranking.local_features import schedule_linking, sift_store, verification_config
from webapp.reranking.models import ImageMatch, MatchGraphScan

__all__ = [
    "DatabaseMatchGraph",
    "link_images",
    "schedule_linking",
    "served_match_graph",
    "unlinked_image_ids",
    "unscanned_images",
]

logger = logging.getLogger(__name__)


class DatabaseMatchGraph:
    """``MatchGraph`` over the stored matches of one SIFT store with at least ``min_inliers``."""

    def __init__(self, features_key: str, min_inliers: int) -> None:
        self.features_key, self.min_inliers = features_key, min_inliers

    def neighbours(self, image_ids: Sequence[Hashable]) -> dict[Hashable, dict[Hashable, int]]:
        wanted = [integer_id(i) for i in image_ids]
        rows = ImageMatch.objects.filter(
            Q(image_a_id__in=wanted) | Q(image_b_id__in=wanted),
            features_key=self.features_key,
            inliers__gte=self.min_inliers,
        ).values_list("image_a_id", "image_b_id", "inliers")
        asked = set(wanted)
        out: dict[Hashable, dict[Hashable, int]] = {}
        for a, b, inliers in rows:
            for x, y in ((a, b), (b, a)):
                if x in asked:
                    out.setdefault(x, {})[y] = inliers
        return out


def served_match_graph() -> DatabaseMatchGraph | None:
    """The graph the search reads (None when ``RERANK_GRAPH_VERIFICATION`` is 0)."""
    threshold = settings.RERANK_GRAPH_VERIFICATION
    return DatabaseMatchGraph(sift_store().extractor_key, threshold) if threshold else None


class LinkCounts(TypedDict):
    """What `link_images` did: photos verified, matches stored, ids waiting for their data."""

    linked: int
    matches: int
    waiting: list[int]


def link_images(
    image_ids: Sequence[int], *, progress: Callable[[int, int], None] | None = None
) -> LinkCounts:
    """Verify each photo against its global neighbours and store the matches; idempotent (a re-run
    replaces the photo's matches with what it finds now).

    Returns counts and ``waiting``: the ids not linked yet because their vector or local features are not
    stored yet (the task tries them again later)."""
    version = get_active_version()
    store, features = get_store(version), sift_store()
    key, floor = features.extractor_key, settings.RERANK_MIN_INLIERS
    verification = verification_config()
    ids = sorted({int(i) for i in image_ids})
    vectors = store.get_vectors(ids)
    ready = [i for i in ids if i in vectors and features.has(i)]
    waiting = sorted(set(ids) - set(ready))
    n = settings.RERANK_GRAPH_NEIGHBOURS
    rows = store.search(np.stack([vectors[i] for i in ready]), k=n + 1) if ready else []
    checked = {
        image_id: [integer_id(hit.image_id) for hit in hits if hit.image_id != image_id][:n]
        for image_id, hits in zip(ready, rows, strict=True)
    }
    # One verification per unordered pair for the whole batch: each candidate's features load once, and a
    # pair whose two photos list each other is not verified twice.
    pairs = sorted({(min(a, b), max(a, b)) for a, others in checked.items() for b in others})
    edges_of: defaultdict[int, list[MatchEdge]] = defaultdict(list)
    for edge in verify_edges(pairs, features, verification, floor):  # type: ignore[arg-type]  # keys str | int, protocol Hashable (see LocalFeatureSource)
        for image_id in edge[:2]:
            edges_of[integer_id(image_id)].append(edge)
    matches = 0
    for done, image_id in enumerate(ready, start=1):
        matches += _store_matches(image_id, checked[image_id], edges_of[image_id], key)
        if progress is not None:
            progress(done, len(ready))
    if waiting:
        logger.info("match graph: %d photos wait for their vector or local features", len(waiting))
    return {"linked": len(ready), "matches": matches, "waiting": waiting}


def _store_matches(image_id: int, checked: Sequence[int], edges: Sequence[MatchEdge], key: str) -> int:
    """Replace the matches between ``image_id`` and the ``checked`` photos with ``edges`` (the batch's
    edges of ``image_id``); record the scan; how many matches ``image_id`` has in the batch."""
    rows = [
        ImageMatch(
            image_a_id=min(integer_id(a), integer_id(b)),
            image_b_id=max(integer_id(a), integer_id(b)),
            features_key=key,
            inliers=inliers,
        )
        for a, b, inliers in edges
    ]
    matched = {r.image_b_id if r.image_a_id == image_id else r.image_a_id for r in rows}
    unmatched = [other for other in checked if other not in matched]
    with transaction.atomic():
        ImageMatch.objects.filter(features_key=key).filter(
            Q(image_a_id=image_id, image_b_id__in=unmatched)
            | Q(image_b_id=image_id, image_a_id__in=unmatched)
        ).delete()
        ImageMatch.objects.bulk_create(
            rows,
            update_conflicts=True,
            unique_fields=["features_key", "image_a", "image_b"],
            update_fields=["inliers", "verified_at"],
        )
        MatchGraphScan.objects.update_or_create(
            image_id=image_id,
            features_key=key,
            defaults={"neighbours": len(checked), "matches": len(rows)},
        )
    return len(rows)


def unscanned_images() -> QuerySet[Image]:
    """Indexed photos not yet verified into the current SIFT store's graph."""
    scanned = MatchGraphScan.objects.filter(features_key=sift_store().extractor_key).values("image_id")
    return Image.objects.filter(status=Image.Status.INDEXED).exclude(pk__in=scanned)


def unlinked_image_ids(*, rescan: bool = False) -> list[int]:
    """Indexed photos not yet scanned for the current SIFT store's graph (``rescan``: every indexed one)."""
    images = Image.objects.filter(status=Image.Status.INDEXED) if rescan else unscanned_images()
    return list(images.order_by("pk").values_list("pk", flat=True))
