"""Writes of the curation app: the dataset analysis, and curators' audited, reversible fixes.

Analysis runs in Celery tasks (workers.tasks.analysis): per image for the pixels (grayscale, size, blur)
and exact duplicates, per landmark for what needs the vector store (near-duplicates, label noise), once
the landmark's images are indexed. Curation actions change the catalogue (label, index membership) and
the curators' verdicts (ImageCuration), mirror index changes in Milvus at once, and record an audit entry
holding every image's state before and after, from which :func:`undo` restores the earlier state.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path

import numpy as np
from django.conf import settings
from django.contrib.auth.base_user import AbstractBaseUser
from django.contrib.auth.models import AnonymousUser
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.db.models import Min, Q
from django.utils import timezone

from retrieval_core.imaging import ImageLoadError
from webapp.catalog.models import Image, Landmark
from webapp.catalog.services import schedule_indexing
from webapp.curation.models import CurationAction, CurationChange, ImageAnalysis, ImageCuration
from webapp.curation.quality import AnalysisConfig, Neighbour, measure_quality, noise_evidence
from webapp.curation.selectors import can_curate, curation_states
from webapp.curation.vectors import stored_vectors
from webapp.embeddings.models import EmbeddingModelVersion
from webapp.embeddings.services import get_store
from workers import task_names
from workers.dispatch import send_batches_on_commit

logger = logging.getLogger(__name__)

DEFAULT_CONFIG = AnalysisConfig()
QUALITY_BATCH = 64
LANDMARK_BATCH = 16
_SEARCH_BATCH = 64
_QUALITY_FIELDS = [
    "is_grayscale",
    "channel_spread",
    "is_too_small",
    "sharpness",
    "is_blurred",
    "quality_error",
    "exact_duplicate_of",
    "quality_analysed_at",
]
_NEIGHBOUR_FIELDS = [
    "near_duplicate_of",
    "nearest_similarity",
    "neighbour_disagreement",
    "centroid_similarity",
    "noise_score",
    "is_suspected_noise",
    "suggested_landmark",
    "neighbours_analysed_at",
]
Progress = Callable[[int, int], None]
User = AbstractBaseUser | AnonymousUser


class CurationError(Exception):
    """A curation request that cannot be carried out; the message is for the curator."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


# --- analysis ---------------------------------------------------------------------------------------------


def queue_analysis(image_ids: Sequence[int]) -> dict[str, int]:
    """Queue the quality analysis of the images, and the neighbour analysis of their landmarks.

    Neighbour analysis re-scores every image of a touched landmark: new images change the neighbours and
    the centroid of the old ones.
    """
    ids = sorted({int(i) for i in image_ids})
    keys = _landmark_keys(Image.objects.filter(pk__in=ids))
    send_batches_on_commit(task_names.ANALYSE_IMAGES, ids, QUALITY_BATCH)
    send_batches_on_commit(task_names.ANALYSE_LANDMARKS, keys, LANDMARK_BATCH)
    return {"images": len(ids), "landmarks": len(keys)}


def queue_collection_analysis(landmark_ids: Sequence[int] | None = None) -> dict[str, int]:
    """Re-run the whole analysis for the given landmarks' images, or for the whole collection."""
    images = (
        Image.objects.all() if landmark_ids is None else Image.objects.filter(landmark_id__in=landmark_ids)
    )
    return queue_analysis(list(images.values_list("pk", flat=True)))


def _landmark_keys(images: object) -> list[int | None]:
    """Landmark ids of the images, None standing for "unlabelled" (JSON-friendly task arguments)."""
    keys = set(images.values_list("landmark_id", flat=True).distinct())  # type: ignore[attr-defined]
    return sorted(keys, key=lambda key: -1 if key is None else key)


def _of_landmark(key: int | None) -> Q:
    return Q(landmark__isnull=True) if key is None else Q(landmark_id=key)


def images_waiting_for_index(landmark_keys: Sequence[int | None]) -> int:
    """Images of these landmarks still pending: their neighbours cannot be judged before they are indexed."""
    query = Q(pk__in=[])
    for key in landmark_keys:
        query |= _of_landmark(key)
    return Image.objects.filter(query, status=Image.Status.PENDING).count()


def analyse_quality(
    image_ids: Sequence[int], *, config: AnalysisConfig = DEFAULT_CONFIG, progress: Progress | None = None
) -> dict[str, int]:
    """Grayscale, size, blur and exact duplicates of the images; idempotent (re-running overwrites)."""
    images = list(Image.objects.filter(pk__in=image_ids).order_by("pk"))
    first_with_bytes = dict(
        Image.objects.filter(sha256__in={image.sha256 for image in images})
        .values("sha256")
        .annotate(first=Min("pk"))
        .values_list("sha256", "first")
    )
    now = timezone.now()
    rows = []
    for done, image in enumerate(images, start=1):
        first = first_with_bytes.get(image.sha256)
        row = ImageAnalysis(
            image=image,
            is_too_small=min(image.width, image.height) < config.min_side,
            exact_duplicate_of_id=first if first != image.pk else None,
            quality_analysed_at=now,
        )
        try:
            signals = measure_quality(
                Path(image.file.path),
                long_side=config.analysis_long_side,
                max_pixels=settings.IMAGE_MAX_PIXELS,
            )
        except (ImageLoadError, OSError) as error:
            row.quality_error = str(error)[:2000]
        else:
            row.channel_spread, row.sharpness = signals.channel_spread, signals.sharpness
            row.is_grayscale, row.is_blurred = signals.is_grayscale(config), signals.is_blurred(config)
        rows.append(row)
        if progress is not None:
            progress(done, len(images))
    ImageAnalysis.objects.bulk_create(
        rows, update_conflicts=True, unique_fields=["image"], update_fields=_QUALITY_FIELDS
    )
    return {
        "analysed": len(rows),
        "grayscale": sum(row.is_grayscale for row in rows),
        "duplicates": sum(row.exact_duplicate_of_id is not None for row in rows),
        "unreadable": sum(bool(row.quality_error) for row in rows),
    }


def analyse_neighbours(
    landmark_keys: Sequence[int | None],
    *,
    config: AnalysisConfig = DEFAULT_CONFIG,
    progress: Progress | None = None,
) -> dict[str, int]:
    """Near-duplicates and label-noise scores of the indexed images of these landmarks (None: unlabelled).

    Each image's own stored vector is searched in the collection (k nearest, not all pairs), so the cost
    grows with the landmark, not with the collection.
    """
    version = EmbeddingModelVersion.objects.filter(is_active=True).first()
    if version is None:  # nothing was ever indexed
        return {"analysed": 0, "suspected": 0}
    store = get_store(version)
    analysed = suspected = 0
    for done, key in enumerate(landmark_keys, start=1):
        rows = _landmark_neighbour_rows(store, key, config)
        ImageAnalysis.objects.bulk_create(
            rows, update_conflicts=True, unique_fields=["image"], update_fields=_NEIGHBOUR_FIELDS
        )
        analysed += len(rows)
        suspected += sum(row.is_suspected_noise for row in rows)
        if progress is not None:
            progress(done, len(landmark_keys))
    return {"analysed": analysed, "suspected": suspected}


def _landmark_neighbour_rows(store: object, key: int | None, config: AnalysisConfig) -> list[ImageAnalysis]:
    candidates = Image.objects.filter(_of_landmark(key), status=Image.Status.INDEXED).order_by("pk")
    vectors = stored_vectors(store, list(candidates.values_list("pk", flat=True)))  # type: ignore[arg-type]
    ids = sorted(vectors)
    if not ids:
        return []
    matrix = np.stack([vectors[i] for i in ids]).astype(np.float64)
    marked_noise = set(
        ImageCuration.objects.filter(image_id__in=ids, is_noise=True).values_list("image_id", flat=True)
    )
    members = [row for image_id, row in zip(ids, matrix, strict=True) if image_id not in marked_noise]
    total = np.sum(members, axis=0) if members else None
    hits = []
    for start in range(0, len(ids), _SEARCH_BATCH):
        hits.extend(store.search(matrix[start : start + _SEARCH_BATCH], k=config.neighbours + 5))  # type: ignore[attr-defined]
    neighbour_ids = {hit.image_id for per_image in hits for hit in per_image}
    labels = dict(Image.objects.filter(pk__in=neighbour_ids).values_list("pk", "landmark_id"))
    voiceless = set(  # a curator said these are noise: they do not vote on anyone's label
        ImageCuration.objects.filter(image_id__in=neighbour_ids, is_noise=True).values_list(
            "image_id", flat=True
        )
    )
    now = timezone.now()
    rows = []
    for image_id, vector, per_image in zip(ids, matrix, hits, strict=True):
        neighbours = [
            Neighbour(hit.image_id, hit.score, None if hit.image_id in voiceless else labels[hit.image_id])
            for hit in per_image
            if hit.image_id in labels  # deleted from the catalogue, not yet from Milvus
        ]
        own = image_id in marked_noise
        evidence = noise_evidence(
            image_id,
            key,
            vector,
            neighbours,
            landmark_size=len(members) + own,
            landmark_sum=None if total is None or key is None else (total + vector if own else total),
            config=config,
        )
        score = evidence.noise_score
        rows.append(
            ImageAnalysis(
                image_id=image_id,
                near_duplicate_of_id=evidence.near_duplicate_of,
                nearest_similarity=evidence.nearest_similarity,
                neighbour_disagreement=evidence.disagreement,
                centroid_similarity=evidence.centroid_similarity,
                noise_score=score,
                is_suspected_noise=score is not None and score >= config.suspect_noise_score,
                suggested_landmark_id=evidence.suggested_landmark_id,
                neighbours_analysed_at=now,
            )
        )
    return rows


# --- curation ---------------------------------------------------------------------------------------------


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
        return cls(**{name: value for name, value in data.items() if name in names})  # type: ignore[arg-type]


def _relabel(landmark_id: int) -> Callable[[ImageState], ImageState]:
    return lambda s: replace(s, landmark_id=landmark_id, label_confirmed=True, is_noise=False)


_CHANGES: dict[str, Callable[[ImageState], ImageState]] = {
    CurationAction.Kind.CONFIRM_LABEL: lambda s: (
        s if s.landmark_id is None else replace(s, label_confirmed=True, is_noise=False)
    ),
    CurationAction.Kind.MARK_NOISE: lambda s: replace(s, is_noise=True, label_confirmed=False),
    CurationAction.Kind.EXCLUDE_FROM_TRAINING: lambda s: replace(s, exclude_from_training=True),
    CurationAction.Kind.REMOVE_FROM_INDEX: lambda s: replace(s, in_index=False),
    CurationAction.Kind.RESTORE: lambda s: replace(
        s, is_noise=False, exclude_from_training=False, in_index=True
    ),
}
_SUMMARIES = {
    CurationAction.Kind.RELABEL: "relabelled {n} image(s) to {landmark}",
    CurationAction.Kind.CONFIRM_LABEL: "confirmed the label of {n} image(s)",
    CurationAction.Kind.MARK_NOISE: "marked {n} image(s) as noise",
    CurationAction.Kind.EXCLUDE_FROM_TRAINING: "excluded {n} image(s) from training",
    CurationAction.Kind.REMOVE_FROM_INDEX: "removed {n} image(s) from the index",
    CurationAction.Kind.RESTORE: "restored {n} image(s)",
}
CURATION_KINDS = tuple(_SUMMARIES)


def curate(
    kind: str,
    image_ids: Sequence[int],
    *,
    user: User,
    landmark: Landmark | None = None,
    note: str = "",
) -> CurationAction | None:
    """Apply one curation action to the images and record it; None when nothing had to change.

    Index changes reach Milvus before this returns (removed vectors are deleted, relabelled ones are
    re-upserted with the new landmark id), so search reflects them at once; a vector-store error undoes
    the whole action.
    """
    _check_curator(user)
    if kind not in CURATION_KINDS:
        raise CurationError(f"unknown action {kind!r}; use one of: {', '.join(CURATION_KINDS)}")
    if kind == CurationAction.Kind.RELABEL and landmark is None:
        raise CurationError("relabelling needs the landmark to relabel to")
    change = _relabel(landmark.pk) if kind == CurationAction.Kind.RELABEL else _CHANGES[kind]  # type: ignore[union-attr]
    ids = sorted({int(i) for i in image_ids})
    if not ids:
        raise CurationError("select at least one image")
    with transaction.atomic():
        images = _locked_images(ids)
        missing = sorted(set(ids) - set(images))
        if missing:
            raise CurationError(f"no image with id {', '.join(map(str, missing[:10]))}", status=404)
        before = curation_states(images)
        after = {pk: change(state) for pk, state in before.items()}
        changed = [pk for pk in before if after[pk] != before[pk]]
        if not changed:
            return None
        summary = _SUMMARIES[kind].format(n=len(changed), landmark=landmark)
        action = _record(kind, user, summary, note, before, after, changed)
        _write_states([images[pk] for pk in changed], before, after)
    return action


def undo(action_id: int, *, user: User) -> CurationAction:
    """Restore the state the images had before the action, as a new (itself undoable) action.

    A field changed again since (by a later action) keeps its newer value; if every field did, the undo
    is refused rather than recorded as a no-op.
    """
    _check_curator(user)
    with transaction.atomic():
        original = CurationAction.objects.select_for_update().filter(pk=action_id).first()
        if original is None:
            raise CurationError(f"there is no curation action #{action_id}", status=404)
        if original.is_undone:
            raise CurationError(f"action #{action_id} was already undone", status=409)
        changes = list(original.changes.all())
        images = _locked_images([change.image_id for change in changes])
        current = curation_states(images)
        landmarks = set(
            Landmark.objects.values_list("pk", flat=True).filter(
                pk__in=[change.before.get("landmark_id") for change in changes]
            )
        )
        target = {}
        for change in changes:
            if change.image_id not in current:
                continue  # the image was deleted since
            target[change.image_id] = _reverted(
                current[change.image_id],
                ImageState.from_dict(change.before),
                ImageState.from_dict(change.after),
                landmarks,
            )
        changed = [pk for pk in target if target[pk] != current[pk]]
        if not changed:
            raise CurationError(
                f"nothing to undo: the images of action #{action_id} were changed again since", status=409
            )
        summary = f"undid #{original.pk} ({original.summary})"[:500]
        action = _record(
            CurationAction.Kind.UNDO, user, summary, "", current, target, changed, reverts=original
        )
        _write_states([images[pk] for pk in changed], current, target)
    return action


def _reverted(now: ImageState, before: ImageState, after: ImageState, landmarks: set[int]) -> ImageState:
    """``now`` with each field the action changed set back, unless it was changed again since."""
    values = {}
    for field in fields(ImageState):
        old, new, current = (getattr(state, field.name) for state in (before, after, now))
        if old == new or current != new:
            continue
        if field.name == "landmark_id" and old is not None and old not in landmarks:
            continue  # that landmark was deleted since
        values[field.name] = old
    return replace(now, **values)


def _check_curator(user: User) -> None:
    if not can_curate(user):
        raise PermissionDenied("only staff with permission to change images can curate")


def _locked_images(ids: Sequence[int]) -> dict[int, Image]:
    """The images, locked until the transaction ends, so two curators cannot interleave on one image."""
    return Image.objects.select_for_update().in_bulk(list(ids))


def _record(
    kind: str,
    user: User,
    summary: str,
    note: str,
    before: dict[int, ImageState],
    after: dict[int, ImageState],
    changed: Sequence[int],
    reverts: CurationAction | None = None,
) -> CurationAction:
    action = CurationAction.objects.create(
        kind=kind,
        user=user if user.is_authenticated else None,
        summary=summary[:500],
        note=note.strip()[:500],
        reverts=reverts,
    )
    CurationChange.objects.bulk_create(
        CurationChange(action=action, image_id=pk, before=before[pk].as_dict(), after=after[pk].as_dict())
        for pk in changed
    )
    return action


def _write_states(
    images: Sequence[Image], before: dict[int, ImageState], after: dict[int, ImageState]
) -> None:
    """Make the catalogue, the verdicts and Milvus match ``after``."""
    remove: list[int] = []
    relabel: dict[int, int | None] = {}
    reindex: list[int] = []
    for image in images:
        old, new = before[image.pk], after[image.pk]
        image.landmark_id = new.landmark_id
        if new.in_index and not old.in_index:
            image.status, image.index_error = Image.Status.PENDING, ""
            reindex.append(image.pk)
        elif old.in_index and not new.in_index:
            if image.status == Image.Status.INDEXED:
                remove.append(image.pk)
            image.status, image.indexed_at = Image.Status.EXCLUDED, None
        elif new.landmark_id != old.landmark_id and image.status == Image.Status.INDEXED:
            relabel[image.pk] = new.landmark_id
    Image.objects.bulk_update(images, ["landmark", "status", "index_error", "indexed_at"])
    ImageCuration.objects.bulk_create(
        [
            ImageCuration(
                image_id=image.pk,
                label_confirmed=after[image.pk].label_confirmed,
                is_noise=after[image.pk].is_noise,
                exclude_from_training=after[image.pk].exclude_from_training,
            )
            for image in images
        ],
        update_conflicts=True,
        unique_fields=["image"],
        update_fields=["label_confirmed", "is_noise", "exclude_from_training", "updated_at"],
    )
    lost = _sync_vector_store(remove, relabel)
    if lost:  # marked indexed, yet Milvus has no vector: index it again, with its new label
        Image.objects.filter(pk__in=lost).update(status=Image.Status.PENDING)
    schedule_indexing(reindex + lost)


def _sync_vector_store(remove: Sequence[int], relabel: dict[int, int | None]) -> list[int]:
    """Delete removed vectors and re-upsert relabelled ones; returns relabelled ids Milvus did not hold."""
    if not remove and not relabel:
        return []
    version = EmbeddingModelVersion.objects.filter(is_active=True).first()
    if version is None:
        return list(relabel)
    store = get_store(version)
    store.delete(list(remove))
    vectors = stored_vectors(store, list(relabel))
    present = [pk for pk in relabel if pk in vectors]
    if present:
        store.upsert(present, np.stack([vectors[pk] for pk in present]), [relabel[pk] for pk in present])
    store.flush()
    return [pk for pk in relabel if pk not in vectors]
