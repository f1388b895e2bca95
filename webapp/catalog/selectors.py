"""Reads of the catalogue used by pages, the API and commands."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time

from django.db.models import Count, Q, QuerySet

from webapp.accounts.selectors import AnyUser
from webapp.catalog.models import Image, Landmark


@dataclass(frozen=True)
class IndexingProgress:
    total: int
    indexed: int
    pending: int
    failed: int
    local_features: int = 0  # images whose re-ranking features are stored (a separate cpu task)

    @property
    def done(self) -> int:
        return self.indexed + self.failed

    @property
    def percent(self) -> float:
        return 100.0 if self.total == 0 else 100.0 * self.done / self.total


def indexing_progress(image_ids: list[int] | None = None) -> IndexingProgress:
    """Counts by indexing status, for the whole collection or for the given images."""
    images = Image.objects.all() if image_ids is None else Image.objects.filter(pk__in=image_ids)
    images = images.exclude(status=Image.Status.EXCLUDED)  # removed by a curator: nothing to wait for
    counts = images.aggregate(
        total=Count("id"),
        indexed=Count("id", filter=Q(status=Image.Status.INDEXED)),
        pending=Count("id", filter=Q(status=Image.Status.PENDING)),
        failed=Count("id", filter=Q(status=Image.Status.FAILED)),
        local_features=Count("id", filter=Q(local_features_at__isnull=False)),
    )
    return IndexingProgress(**counts)


def recent_images(limit: int = 60) -> QuerySet[Image]:
    return Image.objects.select_related("landmark").order_by("-created_at", "-id")[:limit]


def images_matching(
    *,
    landmark_id: int | None = None,
    status: str | None = None,
    taken_after: date | None = None,
    taken_before: date | None = None,
    added_after: date | None = None,
    added_before: date | None = None,
) -> QuerySet[Image]:
    """The catalogue's images, newest first, narrowed by landmark, indexing status, EXIF capture date and
    the date they were added (days inclusive, UTC; a photo without a capture date has none to match)."""
    images = Image.objects.select_related("landmark", "exif").order_by("-created_at", "-id")
    if landmark_id is not None:
        images = images.filter(landmark_id=landmark_id)
    if status is not None:
        images = images.filter(status=status)
    ranges = (("exif__taken_at", taken_after, taken_before), ("created_at", added_after, added_before))
    for field, after, before in ranges:
        if after is not None:
            images = images.filter(**{f"{field}__gte": datetime.combine(after, time.min, UTC)})
        if before is not None:
            images = images.filter(**{f"{field}__lte": datetime.combine(before, time.max, UTC)})
    return images


def images_by_ids(image_ids: list[int]) -> dict[int, Image]:
    return Image.objects.select_related("landmark", "exif").in_bulk(image_ids)


def landmarks_with_counts() -> QuerySet[Landmark]:
    return Landmark.objects.annotate(image_count=Count("images")).order_by("name")


def landmark_shares(landmark_ids: Sequence[int]) -> dict[int, float]:
    """Each landmark's fraction of the indexed photos (``retrieval_core.search.pipeline.LandmarkShares``):
    how often it would fill the top results by its size alone."""
    indexed = Image.objects.filter(status=Image.Status.INDEXED)
    total = indexed.count()
    if not total or not landmark_ids:
        return {}
    counts = (
        indexed.filter(landmark_id__in=list(landmark_ids)).values_list("landmark_id").annotate(n=Count("pk"))
    )
    return {int(landmark): n / total for landmark, n in counts}


def landmark_refusal(user: AnyUser, name: str) -> str | None:
    """Why ``user`` may not file photos under the landmark ``name`` (None: they may).

    Naming an existing landmark needs nothing more; creating one needs ``catalog.add_landmark``.
    """
    name = name.strip()
    if not name or Landmark.objects.filter(name=name).exists():
        return None
    if user.has_perm("catalog.add_landmark"):
        return None
    return f"You may not create the landmark {name!r}: pick an existing one or ask a curator."
