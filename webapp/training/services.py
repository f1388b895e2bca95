"""Training runs: start (queued on the gpu workers), execute with live progress and cancellation, and turn
the best checkpoint into an embedding model version that can be rolled out."""

from __future__ import annotations

import dataclasses
import time
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path

from django.utils import timezone

from retrieval_core.datasets.collection import CollectionItem, read_collection
from retrieval_core.eval.evaluation_protocol import build_protocol
from retrieval_core.eval.splits import split_within_landmarks
from retrieval_core.training import TrainConfig, TrainEvent, ValidationSet, train
from retrieval_core.training.pair_mining import MiningConfig
from retrieval_core.training.self_supervised import held_out_images, mined_split
from webapp import task_names
from webapp.accounts.selectors import AnyUser
from webapp.curation.selectors import as_collection_items, training_images
from webapp.dispatch import send_on_commit
from webapp.embeddings.models import EmbeddingModelVersion
from webapp.embeddings.services import register_checkpoint
from webapp.media import LocalPath, local_media_paths
from webapp.storage import StoredFileUnavailable, lasting_local_copy
from webapp.training.lifecycle import run_dir
from webapp.training.mining_stages import folder_gps, load_result, mined_paths
from webapp.training.models import MiningRun, TrainingRun

_SAVE_EVERY_S = 2.0
_MAX_LOSS_POINTS = 500


def create_run(config: TrainConfig, *, root: Path | None = None, user: AnyUser | None = None) -> TrainingRun:
    if root is not None and not Path(root).is_dir():
        raise ValueError(f"{root} is not a folder")
    return TrainingRun.objects.create(
        root=str(Path(root).resolve()) if root else "",
        config=config.to_dict(),
        created_by=user if user is not None and user.is_authenticated else None,
    )


def start_training(
    config: TrainConfig, *, root: Path | None = None, user: AnyUser | None = None
) -> TrainingRun:
    """Record a run and queue it on the gpu workers once the transaction commits."""
    run = create_run(config, root=root, user=user)
    send_on_commit(task_names.TRAIN_MODEL, run.pk)
    return run


def create_self_run(
    config: TrainConfig,
    mining: MiningConfig,
    *,
    root: Path | None = None,
    user: AnyUser | None = None,
    held_out: Sequence[str | int] = (),
) -> TrainingRun:
    """Record a ``self`` run: mining (`webapp.training.mining_stages`) first, then contrastive training on the
    pseudo-landmarks. ``held_out``: image ids (relpaths, catalogue keys) that must never be mined."""
    if config.recipe != "e3":
        raise ValueError("the self recipe trains contrastively (e3 from any starting weights)")
    run = create_run(config, root=root, user=user)
    MiningRun.objects.create(training_run=run, config=mining.to_dict(), held_out=list(held_out))
    return run


def start_self_training(
    config: TrainConfig,
    mining: MiningConfig,
    *,
    root: Path | None = None,
    user: AnyUser | None = None,
    held_out: Sequence[str | int] = (),
) -> TrainingRun:
    """`create_self_run`, then queue its mining (which queues the training when it is done)."""
    run = create_self_run(config, mining, root=root, user=user, held_out=held_out)
    send_on_commit(task_names.MINE_PREPARE, run.mining.pk)
    return run


def version_weights(name_or_id: str) -> str:
    """Weights of a model version (by name or id), to start a run from."""
    query = EmbeddingModelVersion.objects.filter(name=name_or_id)
    if name_or_id.isdigit():
        query = query | EmbeddingModelVersion.objects.filter(pk=int(name_or_id))
    version = query.first()
    if version is None:
        raise ValueError(f"no model version {name_or_id!r}")
    return version.weights


def protocol_held_out(root: Path | None) -> list[str]:
    """The images `evaluate ROOT` reports on and what they must find (its reported queries, their
    positives and junk) plus every image of their landmarks and every photo within the mining's GPS
    distance of one of them: never mined, so the evaluation stays honest."""
    if root is None:
        raise ValueError("--hold-out-queries needs ROOT (the collection that will be evaluated)")
    protocol = build_protocol(Path(root))
    items = read_collection(Path(root))
    labels = {item.relpath: item.landmark for item in items}
    gps = folder_gps({item.relpath: item.path for item in items})
    return sorted(str(i) for i in held_out_images(protocol.queries, labels=labels, gps=gps))


def is_self_run(run: TrainingRun) -> bool:
    return MiningRun.objects.filter(training_run=run).exists()


def request_cancel(run: TrainingRun) -> None:
    """Ask a queued or running run to stop; it saves a resumable checkpoint and ends as cancelled."""
    if run.is_finished:
        raise ValueError(f"run {run.pk} has already finished ({run.status})")
    TrainingRun.objects.filter(pk=run.pk).update(cancel_requested=True)


def training_items(run: TrainingRun, local_path: LocalPath) -> list[CollectionItem]:
    """The collection folder's items, or the curated catalogue (relabels and exclusions applied), whose
    photos are read from ``local_path(name)`` (`local_media_paths`)."""
    if run.root:
        return [item for item in read_collection(Path(run.root)) if item.split != "query"]
    return as_collection_items(training_images().select_related("landmark").order_by("pk"), local_path)


def validation_counts(items: list[CollectionItem]) -> dict[str, int]:
    """Per landmark, hold out ~10 % as validation queries and ~20 % as their index (at least one each)."""
    sizes = sorted(Counter(item.landmark for item in items).values()) or [0]
    typical = sizes[len(sizes) // 2]
    return {"val_queries": max(1, round(0.1 * typical)), "val_index": max(1, round(0.2 * typical))}


def execute_run(run_id: int, *, on_event: Callable[[TrainEvent], None] | None = None) -> TrainingRun:
    """Train (resuming from this run's last checkpoint if a worker died mid-run) and register the result.

    The trainer's DataLoader opens photos by path: with media on S3 they are local copies for the run."""
    with local_media_paths() as local_path:
        return _execute_run(run_id, local_path, on_event)


def _execute_run(
    run_id: int, local_path: LocalPath, on_event: Callable[[TrainEvent], None] | None
) -> TrainingRun:
    run = TrainingRun.objects.get(pk=run_id)
    if run.is_finished:
        return run
    config = TrainConfig.from_dict(run.config)
    try:
        train_items, val_queries, val_index = _training_data(run, config, local_path)
    except ValueError as error:
        _finish(run, TrainingRun.Status.FAILED, error=str(error))
        return TrainingRun.objects.get(pk=run.pk)
    if len({item.landmark for item in train_items}) < 2 or not val_queries:
        _finish(run, TrainingRun.Status.FAILED, error="not enough labelled images to train and validate")
        return TrainingRun.objects.get(pk=run.pk)
    if len({item.landmark for item in train_items}) < config.p:
        config = dataclasses.replace(config, p=len({item.landmark for item in train_items}))
    TrainingRun.objects.filter(pk=run.pk).update(status=TrainingRun.Status.RUNNING, error="")
    out = run_dir(run)
    try:  # a run from a model version in the bucket trains from a copy in its own folder (resumes find it)
        init_weights = lasting_local_copy(config.init_weights, out / "init")
    except StoredFileUnavailable as error:
        _finish(run, TrainingRun.Status.FAILED, error=f"the starting weights cannot be read: {error}")
        return TrainingRun.objects.get(pk=run.pk)
    config = dataclasses.replace(config, init_weights=init_weights)
    last = out / "last.pt"
    state = {"saved": 0.0, "checked": 0.0, "cancel": False}
    losses: list[list[float]] = list(run.losses)
    epochs: list[dict[str, object]] = list(run.epochs)

    def progress(event: TrainEvent) -> None:
        if event.kind == "step":
            losses.append([event.step, round(event.loss, 5)])
            del losses[: max(0, len(losses) - _MAX_LOSS_POINTS)]
        else:
            epochs.append(
                {
                    "epoch": event.epoch,
                    "step": event.step,
                    "loss": event.loss,
                    "validation_map": event.validation_map,
                    "is_best": event.is_best,
                }
            )
        now = time.monotonic()
        if event.kind == "epoch" or now - state["saved"] >= _SAVE_EVERY_S:
            state["saved"] = now
            TrainingRun.objects.filter(pk=run.pk).update(
                epoch=event.epoch,
                step=event.step,
                total_steps=event.total_steps,
                images_per_s=event.images_per_s,
                losses=losses,
                epochs=epochs,
            )
        if on_event is not None:
            on_event(event)

    def should_stop() -> bool:
        now = time.monotonic()
        if now - state["checked"] >= 1.0:
            state["checked"] = now
            state["cancel"] = TrainingRun.objects.filter(pk=run.pk, cancel_requested=True).exists()
        return bool(state["cancel"])

    try:
        result = train(
            config,
            train_items,
            ValidationSet(val_queries, val_index),
            out,
            progress,
            should_stop,
            resume=last if last.exists() else None,
        )
    except Exception as error:
        _finish(run, TrainingRun.Status.FAILED, error=f"{type(error).__name__}: {error}")
        raise
    TrainingRun.objects.filter(pk=run.pk).update(losses=losses, epochs=epochs)
    if result.stopped:
        _finish(run, TrainingRun.Status.CANCELLED, initial_map=result.initial_map, best_map=result.best_map)
        return TrainingRun.objects.get(pk=run.pk)
    version = None
    if result.best_checkpoint is not None:
        # best.pt is what other processes load (the web server embeds queries with it): published to the
        # storage they read (the bucket with STORAGE_BACKEND=s3); last.pt stays in this worker's VAR_DIR.
        version = register_checkpoint(
            result.best_checkpoint, name=f"run {run.pk} {'self' if is_self_run(run) else config.recipe}"
        )
    _finish(
        run,
        TrainingRun.Status.DONE,
        initial_map=result.initial_map,
        best_map=result.best_map,
        best_checkpoint=version.weights if version is not None else "",
        model_version=version,
    )
    return TrainingRun.objects.get(pk=run.pk)


def _training_data(
    run: TrainingRun, config: TrainConfig, local_path: LocalPath
) -> tuple[list[CollectionItem], list[CollectionItem], list[CollectionItem]]:
    """(train, validation queries, validation index): held out per landmark, or for a ``self`` run the
    mined pseudo-landmarks with whole components held out for validation (`mined_split`)."""
    mining = MiningRun.objects.filter(training_run=run).first()
    if mining is None:
        items = training_items(run, local_path)
        return split_within_landmarks(items, seed=config.seed, **validation_counts(items))
    if mining.status != MiningRun.Status.DONE:
        raise ValueError(f"mining has not finished ({mining.get_status_display()})")
    result = load_result(mining)
    paths = mined_paths(mining, result.ids, local_path)
    split = mined_split(result, {key: paths[str(key)] for key in result.ids}, seed=config.seed)
    return split.train, split.val_queries, split.val_index


def _finish(run: TrainingRun, status: str, **fields: object) -> None:
    TrainingRun.objects.filter(pk=run.pk).update(status=status, finished_at=timezone.now(), **fields)
