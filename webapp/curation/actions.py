"""Curators' audited, reversible fixes of the collection.

An action changes the catalogue (label, index membership) and the curators' verdicts (ImageCuration),
mirrors index changes in Milvus at once, and records an audit entry holding every image's state before and
after, from which :func:`undo` restores the earlier state.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import fields, replace

import numpy as np
from django.core.exceptions import PermissionDenied
from django.db import transaction

from webapp.accounts.selectors import AnyUser
from webapp.catalog.models import Image, Landmark
from webapp.catalog.services import schedule_indexing
from webapp.curation.models import CurationAction, CurationChange, ImageCuration
from webapp.curation.selectors import ImageState, can_curate, curation_states
from webapp.curation.vectors import stored_vectors
from webapp.embeddings.models import EmbeddingModelVersion
from webapp.embeddings.services import delete_vectors, get_store, photo_scalars


class CurationError(Exception):
    """A curation request that cannot be carried out; the message is for the curator."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


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
_SUMMARIES: dict[str, str] = {
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
    user: AnyUser,
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
    if kind == CurationAction.Kind.RELABEL:
        if landmark is None:
            raise CurationError("relabelling needs the landmark to relabel to")
        change = _relabel(landmark.pk)
    else:
        change = _CHANGES[kind]
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


def undo(action_id: int, *, user: AnyUser) -> CurationAction:
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


def _check_curator(user: AnyUser) -> None:
    if not can_curate(user):
        raise PermissionDenied("only staff with permission to change images can curate")


def _locked_images(ids: Sequence[int]) -> dict[int, Image]:
    """The images, locked until the transaction ends, so two curators cannot interleave on one image."""
    return Image.objects.select_for_update().in_bulk(list(ids))


def _record(
    kind: str,
    user: AnyUser,
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
    delete_vectors(version, remove)
    store = get_store(version)
    vectors = stored_vectors(store, list(relabel))
    present = [pk for pk in relabel if pk in vectors]
    if present:
        scalars = photo_scalars(present)  # a row is replaced whole: keep its date and place fields
        store.upsert(
            present,
            np.stack([vectors[pk] for pk in present]),
            [relabel[pk] for pk in present],
            [scalars[pk] for pk in present],
        )
    store.flush()
    return [pk for pk in relabel if pk not in vectors]
