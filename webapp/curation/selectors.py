"""Reads of the curation app: who may curate, the curated view of the data, dashboard and review lists."""

from __future__ import annotations

import calendar
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, fields

from django.db.models import BooleanField, Case, Count, F, Q, QuerySet, Value, When
from django.db.models.functions import Extract, ExtractHour, ExtractMonth, ExtractYear

from retrieval_core.datasets.collection import UNLABELLED, CollectionItem
from webapp.accounts.selectors import AnyUser
from webapp.catalog.models import Image, ImageExif, Landmark
from webapp.curation.models import CurationAction, ImageAnalysis, ImageCuration
from webapp.media import LocalPath

GPS_POINTS_SHOWN = 5000
_TRAINING_SPLITS = (Image.Split.TRAIN, Image.Split.NONE)
_EVALUATION_SPLITS = (Image.Split.VALIDATION, Image.Split.QUERY, Image.Split.INDEX, Image.Split.NONE)


def can_curate(user: AnyUser) -> bool:
    """Staff who may change images: the admin's own rule, so the admin and the review page agree."""
    return bool(user.is_active and user.is_staff and user.has_perm("catalog.change_image"))


@dataclass(frozen=True)
class ImageState:
    """Everything a curation action can change about one image (what the audit trail stores)."""

    landmark_id: int | None
    label_confirmed: bool = False
    is_noise: bool = False
    exclude_from_training: bool = False
    in_index: bool = True

    def as_dict(self) -> dict[str, object]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, object]) -> ImageState:
        names = {field.name for field in fields(cls)}
        kept = {name: value for name, value in data.items() if name in names}
        return cls(**kept)  # type: ignore[arg-type]  # the audit trail's JSON, written by as_dict


def curation_states(images: Mapping[int, Image]) -> dict[int, ImageState]:
    """The curation state of each image (its label, its verdicts, whether it is in the index)."""
    verdicts = ImageCuration.objects.in_bulk(list(images))
    states = {}
    for pk, image in images.items():
        verdict = verdicts.get(pk)
        states[pk] = ImageState(
            landmark_id=image.landmark_id,
            label_confirmed=bool(verdict and verdict.label_confirmed),
            is_noise=bool(verdict and verdict.is_noise),
            exclude_from_training=bool(verdict and verdict.exclude_from_training),
            in_index=image.status != Image.Status.EXCLUDED,
        )
    return states


def open_suspect(prefix: str = "") -> Q:
    """Suspected by the analysis, and no curator has confirmed the label or marked it noise yet."""
    return Q(**{f"{prefix}analysis__is_suspected_noise": True}) & (
        Q(**{f"{prefix}curation__isnull": True})
        | Q(**{f"{prefix}curation__label_confirmed": False, f"{prefix}curation__is_noise": False})
    )


def _usable() -> QuerySet[Image]:
    """Readable images no curator marked as noise, with their current (corrected) labels."""
    return (
        Image.objects.exclude(status=Image.Status.FAILED)
        .exclude(curation__is_noise=True)
        .select_related("landmark")
        .order_by("pk")
    )


def training_images(splits: Iterable[str] = _TRAINING_SPLITS) -> QuerySet[Image]:
    """What the next training run may learn from: labelled, usable, not excluded from training.

    Images without a split are included so that a seeded split (retrieval_core.eval.splits) can still
    assign them; pass ``splits=("train",)`` for a collection that comes with its own split.
    """
    return (
        _usable()
        .filter(landmark__isnull=False, split__in=list(splits))
        .exclude(curation__exclude_from_training=True)
    )


def evaluation_images(splits: Iterable[str] = _EVALUATION_SPLITS) -> QuerySet[Image]:
    """What evaluation may use: usable images (unlabelled ones stay, as distractors of the index).

    Excluding from training does not remove an image from evaluation; marking it as noise does, since a
    wrong label would count correct results as wrong.
    """
    return _usable().filter(split__in=list(splits))


def as_collection_items(images: Iterable[Image], local_path: LocalPath) -> list[CollectionItem]:
    """The images as retrieval_core collection items, for its datasets, splits and training; their files
    are ``local_path(name)`` (`webapp.media.local_media_paths`: the stored file, or a local copy)."""
    return [
        CollectionItem(
            path=local_path(image.file.name),
            relpath=image.source or image.file.name,
            landmark=image.landmark.name if image.landmark else UNLABELLED,
            split=image.split or None,
        )
        for image in images
    ]


# --- dashboard --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DatasetOverview:
    images: int
    landmarks: int
    unlabelled: int
    analysed: int
    top_landmarks: list[tuple[str, int]]
    landmark_sizes: list[tuple[str, int]]
    flags: list[tuple[str, int]]
    years: list[tuple[str, int]]
    months: list[tuple[str, int]]
    hours: list[tuple[str, int]]
    cameras: list[tuple[str, int]]
    gps_points: list[tuple[float, float]]
    with_exif_date: int
    with_gps: int


_SIZE_BUCKETS = ((1, 1), (2, 2), (3, 5), (6, 10), (11, 20), (21, 50), (51, 100), (101, None))


def dataset_overview(top: int = 25) -> DatasetOverview:
    """Everything the dashboard plots, in a fixed number of queries whatever the collection's size."""
    sizes = list(
        Landmark.objects.annotate(n=Count("images"))
        .filter(n__gt=0)
        .order_by("-n", "name")
        .values_list("name", "n")
    )
    buckets = []
    for low, high in _SIZE_BUCKETS:
        label = f"{low}+" if high is None else (str(low) if low == high else f"{low}-{high}")
        buckets.append((label, sum(1 for _, n in sizes if n >= low and (high is None or n <= high))))
    counts = Image.objects.aggregate(
        images=Count("pk"),
        unlabelled=Count("pk", filter=Q(landmark__isnull=True)),
        removed=Count("pk", filter=Q(status=Image.Status.EXCLUDED)),
        noise=Count("pk", filter=Q(curation__is_noise=True)),
        excluded=Count("pk", filter=Q(curation__exclude_from_training=True)),
    )
    analysis = ImageAnalysis.objects.aggregate(
        analysed=Count("pk", filter=Q(quality_analysed_at__isnull=False)),
        grayscale=Count("pk", filter=Q(is_grayscale=True)),
        too_small=Count("pk", filter=Q(is_too_small=True)),
        blurred=Count("pk", filter=Q(is_blurred=True)),
        exact=Count("pk", filter=Q(exact_duplicate_of__isnull=False)),
        near=Count("pk", filter=Q(exact_duplicate_of__isnull=True, near_duplicate_of__isnull=False)),
        suspected=Count("pk", filter=Q(is_suspected_noise=True)),
    )
    flags = [
        ("grayscale", analysis["grayscale"]),
        ("too small", analysis["too_small"]),
        ("blurred", analysis["blurred"]),
        ("exact duplicate", analysis["exact"]),
        ("near-duplicate", analysis["near"]),
        ("suspected label noise", analysis["suspected"]),
        ("marked noise by a curator", counts["noise"]),
        ("excluded from training", counts["excluded"]),
        ("removed from the index", counts["removed"]),
    ]
    dated = ImageExif.objects.filter(taken_at__isnull=False)
    years = _counted(dated, ExtractYear("taken_at"))
    months = _counted(dated, ExtractMonth("taken_at"))
    hours = _counted(dated, ExtractHour("taken_at"))
    located = ImageExif.objects.filter(latitude__isnull=False, longitude__isnull=False)
    shown = located.order_by("pk").values_list("longitude", "latitude")[:GPS_POINTS_SHOWN]
    cameras = (
        ImageExif.objects.exclude(camera_make="", camera_model="")
        .values("camera_make", "camera_model")
        .annotate(n=Count("pk"))
        .order_by("-n", "camera_make", "camera_model")[:15]
    )
    return DatasetOverview(
        images=counts["images"],
        landmarks=len(sizes),
        unlabelled=counts["unlabelled"],
        analysed=analysis["analysed"],
        top_landmarks=sizes[:top],
        landmark_sizes=buckets,
        flags=flags,
        years=[(str(year), n) for year, n in sorted(years.items())],
        months=[(calendar.month_abbr[m], months.get(m, 0)) for m in range(1, 13)],
        hours=[(f"{h:02d}", hours.get(h, 0)) for h in range(24)],
        cameras=[(_camera_name(row["camera_make"], row["camera_model"]), row["n"]) for row in cameras],
        gps_points=[
            (longitude, latitude)
            for longitude, latitude in shown
            if longitude is not None and latitude is not None  # always: `located` has both
        ],
        with_exif_date=sum(years.values()),
        with_gps=located.count(),
    )


def _counted(rows: QuerySet[ImageExif], part: Extract) -> dict[int, int]:
    """How many of ``rows`` fall on each value of ``part`` (a year, a month, an hour)."""
    counts = rows.annotate(key=part).values("key").annotate(n=Count("pk")).order_by()
    return {int(row["key"]): row["n"] for row in counts}


def _camera_name(make: str, model: str) -> str:
    """ "Canon" + "Canon EOS 5D" reads "Canon EOS 5D", not "Canon Canon EOS 5D"."""
    if make and model.lower().startswith(make.split()[0].lower()):
        return model
    return f"{make} {model}".strip()


def landmarks_to_review(limit: int = 30) -> QuerySet[Landmark]:
    """Landmarks with the most suspected intruders first, then the largest."""
    return (
        Landmark.objects.annotate(
            image_count=Count("images"),
            suspected=Count("images", filter=open_suspect("images__")),
        )
        .filter(image_count__gt=0)
        .order_by("-suspected", "-image_count", "name")[:limit]
    )


def landmark_review(landmark: Landmark) -> QuerySet[Image]:
    """A landmark's images, suspected intruders no curator has ruled on first, then by noise score."""
    return (
        Image.objects.filter(landmark=landmark)
        .select_related("analysis", "curation", "analysis__suggested_landmark")
        .annotate(
            open_suspect=Case(
                When(open_suspect(), then=Value(True)), default=Value(False), output_field=BooleanField()
            )
        )
        .order_by(F("open_suspect").desc(), F("analysis__noise_score").desc(nulls_last=True), "pk")
    )


def recent_actions(limit: int = 20) -> QuerySet[CurationAction]:
    return (
        CurationAction.objects.select_related("user", "reverts", "reverted_by")
        .annotate(image_count=Count("changes"))
        .order_by("-created_at", "-id")[:limit]
    )


def landmark_by_name(name: str) -> Landmark | None:
    return Landmark.objects.filter(name=name.strip()).first()


def landmark_names(limit: int = 5000) -> list[str]:
    """Names offered when typing a relabel target (capped: a datalist of 80k names helps nobody)."""
    return list(Landmark.objects.order_by("name").values_list("name", flat=True)[:limit])
