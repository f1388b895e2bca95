"""The ``self`` recipe's mining stage: candidate pairs, chunked verification on the workers, the summary.

Work is split so that no task outlives the broker's visibility timeout and a lost one is simply sent again:

1. ``prepare`` (gpu queue, it may run the model): the data source's global vectors (the active version's
   Milvus collection for the catalogue; extracted into a feature cache for a collection folder, by the
   run's starting model), then the candidate pairs (`MiningState.prepare`, saved in ``manifest.json``).
   It queues one ``verify`` task per chunk.
2. ``verify`` (cpu queue): one chunk of pairs by RootSIFT + MAGSAC++, saved to its own file; idempotent.
   The task that completes the last chunk (claimed by one conditional UPDATE) summarises: pseudo-landmarks,
   hard negatives, statistics and a few sample pairs with match drawings, then queues the training.

`execute_mining` runs the same steps in one process (``manage.py train --recipe self`` without --queue).
"""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import cv2
import numpy as np
from PIL import Image as PILImage

from retrieval_core.atomic import atomic_write
from retrieval_core.datasets.collection import UNLABELLED, read_collection
from retrieval_core.features.global_ import GlobalDescriptorExtractor
from retrieval_core.imaging import ImageLoadError, ImageSource, load_image
from retrieval_core.index.vector_index import VectorIndex
from retrieval_core.models.embedding import IMAGENET, EmbeddingConfig
from retrieval_core.rerank.scorer import QueryFeatures
from retrieval_core.rerank.sift_scorer import LocalFeatureSource, SiftScorer
from retrieval_core.rerank.visualize import draw_matches
from retrieval_core.training import TrainConfig, checkpoint_embedding_config
from retrieval_core.training.collection_mining import (
    DEFAULT_SIFT,
    open_cached_sift,
    prepare_collection_features,
)
from retrieval_core.training.pair_mining import (
    GeoPoint,
    ImageKey,
    MiningConfig,
    MiningResult,
    MiningState,
    summarise,
)
from webapp import task_names
from webapp.catalog.exif import read_exif
from webapp.catalog.models import Image
from webapp.dispatch import send_on_commit
from webapp.embeddings.services import get_active_version, get_store
from webapp.media import LocalPath, photo_bytes
from webapp.reranking.local_features import sift_store
from webapp.storage import lasting_local_copy
from webapp.training.lifecycle import finish_run, run_dir
from webapp.training.models import MiningRun, TrainingRun

logger = logging.getLogger(__name__)
Key = TypeVar("Key", bound=ImageKey)  # a folder's relative paths, or catalogue ids

Progress = Callable[[str, int, int], None]
SAMPLE_PAIRS = 6
_DRAWING_HEIGHT = 200


@dataclass(frozen=True)
class MiningSource:
    """Where a run mines: image ids, their files, curated labels and GPS, the index and local features."""

    ids: tuple[ImageKey, ...]
    photo: Callable[[ImageKey], ImageSource]  # a file of the folder, or a catalogue photo's stored bytes
    labels: Mapping[ImageKey, str]
    gps: Mapping[ImageKey, GeoPoint]
    index: VectorIndex | None  # None: features read back for verification only
    features: LocalFeatureSource


def mining_dir(mining: MiningRun) -> Path:
    return run_dir(mining.training_run) / "mining"


def result_path(mining: MiningRun) -> Path:
    return mining_dir(mining) / "result.json"


def load_result(mining: MiningRun) -> MiningResult:
    """The stored result (pairs, pseudo-landmarks); ``FileNotFoundError`` before mining is done."""
    return MiningResult.from_dict(json.loads(result_path(mining).read_text()))


def folder_gps(paths: Mapping[Key, Path]) -> dict[Key, GeoPoint]:
    """GPS from the EXIF of a folder's photos (the catalogue keeps it in ImageExif); headers only."""
    found: dict[Key, GeoPoint] = {}
    for image_id, path in paths.items():
        try:
            with PILImage.open(path) as image:
                exif = read_exif(image)
        except OSError:
            continue  # unreadable files are reported where they are decoded
        if exif.latitude is not None and exif.longitude is not None:
            found[image_id] = (exif.latitude, exif.longitude)
    return found


def mined_paths(mining: MiningRun, ids: Iterable[ImageKey], local_path: LocalPath) -> dict[str, Path]:
    """File of each of the run's mined images ``ids``, by its id as text (relpath or catalogue key); the
    catalogue's photos are ``local_path(name)`` (`webapp.media.local_media_paths`)."""
    wanted = {str(i) for i in ids}
    run = mining.training_run
    if run.root:
        return {item.relpath: item.path for item in read_collection(Path(run.root)) if item.relpath in wanted}
    keys = [int(key) for key in wanted if key.isdigit()]
    return {
        str(image.pk): local_path(image.file.name)
        for image in Image.objects.filter(pk__in=keys).only("pk", "file")
    }


def _cancelled(mining: MiningRun) -> bool:
    """A cancel request ends the mining (chunks stay saved) and the run as cancelled."""
    if not TrainingRun.objects.filter(pk=mining.training_run_id, cancel_requested=True).exists():
        return False
    _update(mining, status=MiningRun.Status.FAILED, error="cancelled")
    finish_run(mining.training_run, TrainingRun.Status.CANCELLED)
    return True


def _update(mining: MiningRun, **fields: object) -> None:
    MiningRun.objects.filter(pk=mining.pk).update(**fields)


def _fail(mining: MiningRun, error: str) -> None:
    _update(mining, status=MiningRun.Status.FAILED, error=error)
    finish_run(mining.training_run, TrainingRun.Status.FAILED, error=f"mining failed: {error}")


# -- sources -------------------------------------------------------------------------------------------------


def source_for(mining: MiningRun, progress: Progress | None = None, *, extract: bool = True) -> MiningSource:
    """The catalogue (root empty) or the run's collection folder. A folder's features are extracted by the
    run's starting model with ``extract`` (the prepare step), else read from its cache (``index`` None)."""
    run = mining.training_run
    if run.root:
        return _folder_source(mining, Path(run.root), progress, extract)
    return _catalogue_source()


def _folder_source(mining: MiningRun, root: Path, progress: Progress | None, extract: bool) -> MiningSource:
    """A folder's images (never its ``split=query`` ones), features by the run's starting model."""
    items = [item for item in read_collection(root) if item.split != "query"]
    paths: dict[ImageKey, Path] = {item.relpath: item.path for item in items}
    labels: dict[ImageKey, str] = {i.relpath: i.landmark for i in items if i.landmark != UNLABELLED}
    cache = mining_dir(mining) / "cache"
    if not extract:
        ids = tuple(sorted(item.relpath for item in items))
        return MiningSource(
            ids, paths.__getitem__, labels, folder_gps(paths), None, open_cached_sift(cache, ids)
        )
    config = TrainConfig.from_dict(mining.training_run.config)
    init_weights = lasting_local_copy(config.init_weights, mining_dir(mining).parent / "init")  # as training
    embedding = EmbeddingConfig(config.backbone, init_weights, config.image_size, config.gem_p)
    if init_weights != IMAGENET:
        embedding = checkpoint_embedding_config(init_weights)
    extractor = GlobalDescriptorExtractor.from_config(embedding, device=config.device)
    features = prepare_collection_features(
        cache, {item.relpath: item.path for item in items}, extractor, DEFAULT_SIFT, progress=progress
    )
    for failure in features.failures:
        logger.warning("mining: %s (left out of pairs)", failure)
    # GPS only matters for negatives, which `finish` summarises from the source read back without the model.
    return MiningSource(features.ids, paths.__getitem__, labels, {}, features.index, features.sift)


def _catalogue_source() -> MiningSource:
    """Usable catalogue images indexed by the active version, with their stored SIFT, labels and GPS."""
    images = (
        Image.objects.exclude(status=Image.Status.FAILED)
        .exclude(curation__is_noise=True)
        .exclude(curation__exclude_from_training=True)
        .filter(indexed_at__isnull=False)
        .select_related("landmark", "exif")
        .order_by("pk")
    )
    ids: list[ImageKey] = []
    names: dict[ImageKey, str] = {}
    labels: dict[ImageKey, str] = {}
    gps: dict[ImageKey, GeoPoint] = {}
    for image in images:
        ids.append(image.pk)
        names[image.pk] = image.file.name
        if image.landmark is not None:
            labels[image.pk] = image.landmark.name
        exif = getattr(image, "exif", None)
        if exif is not None and exif.latitude is not None and exif.longitude is not None:
            gps[image.pk] = (exif.latitude, exif.longitude)
    return MiningSource(
        tuple(ids),
        lambda key: photo_bytes(names[key]),
        labels,
        gps,
        get_store(get_active_version()),
        sift_store(),  # type: ignore[arg-type]  # keys str | int, protocol Hashable (see LocalFeatureSource)
    )


# -- the steps -----------------------------------------------------------------------------------------------


def prepare(mining_id: int, progress: Progress | None = None, *, dispatch: bool = True) -> MiningState | None:
    """Candidates (resuming a saved manifest) and, with ``dispatch``, one verify task per chunk."""
    mining = MiningRun.objects.select_related("training_run").get(pk=mining_id)
    if mining.is_finished or _cancelled(mining):
        return None
    _update(mining, status=MiningRun.Status.CANDIDATES, stage="features and candidates", error="")
    TrainingRun.objects.filter(pk=mining.training_run_id).update(status=TrainingRun.Status.RUNNING)
    try:
        source = source_for(mining, progress)
        assert source.index is not None
        state = MiningState.prepare(
            mining_dir(mining) / "state",
            source.ids,
            source.index,
            MiningConfig.from_dict(mining.config),
            exclude=_held_out(mining, source),
            progress=progress,
        )
    except Exception as error:
        _fail(mining, f"{type(error).__name__}: {error}")
        raise
    _update(
        mining,
        status=MiningRun.Status.VERIFYING,
        stage="verifying pairs",
        done=len(state.done_chunks()),
        total=state.n_chunks,
    )
    if dispatch:
        todo = sorted(set(range(state.n_chunks)) - state.done_chunks())
        for number in todo:
            send_on_commit(task_names.MINE_VERIFY, mining.pk, number)
        if not todo:
            send_on_commit(task_names.MINE_VERIFY, mining.pk, -1)  # nothing to verify: summarise now
    return state


def _held_out(mining: MiningRun, source: MiningSource) -> list[ImageKey]:
    """Held-out ids as stored (JSON makes catalogue keys strings only if they were given as strings)."""
    known = {str(i): i for i in source.ids}
    return [known[str(i)] for i in mining.held_out if str(i) in known]


def verify(mining_id: int, number: int, *, dispatch: bool = True) -> bool:
    """Verify chunk ``number`` (``-1``: none, only summarise); True when this call finished the mining."""
    mining = MiningRun.objects.select_related("training_run").get(pk=mining_id)
    if mining.is_finished or _cancelled(mining):
        return False
    state = MiningState.open(mining_dir(mining) / "state")
    source = source_for(mining, extract=False)
    try:
        if number >= 0:
            state.run_chunk(number, source.features)
    except Exception as error:
        _fail(mining, f"{type(error).__name__}: {error}")
        raise
    done = len(state.done_chunks())
    _update(mining, done=done)
    if done < state.n_chunks:
        return False
    claimed = MiningRun.objects.filter(pk=mining.pk, status=MiningRun.Status.VERIFYING).update(
        status=MiningRun.Status.SUMMARISING, stage="summarising"
    )
    if not claimed:
        return False  # another task summarises
    try:
        finish(mining, state, source)
    except Exception as error:
        _fail(mining, f"{type(error).__name__}: {error}")
        raise
    if dispatch:
        send_on_commit(task_names.TRAIN_MODEL, mining.training_run_id)
    return True


def finish(mining: MiningRun, state: MiningState, source: MiningSource | None = None) -> MiningResult:
    """Summarise, store the result and the page's statistics and sample drawings."""
    source = source or source_for(mining, extract=False)
    result = summarise(state, labels=source.labels, gps=source.gps)
    atomic_write(result_path(mining), lambda handle: handle.write(json.dumps(result.to_dict()).encode()))
    samples = sample_pairs(result, source, state.config)
    _update(
        mining,
        status=MiningRun.Status.DONE,
        stage="done",
        statistics=result.statistics,
        samples=samples,
        done=state.n_chunks,
        total=state.n_chunks,
    )
    return result


def execute_mining(mining_id: int, progress: Progress | None = None) -> MiningRun:
    """All steps in this process, resuming saved chunks (the terminal's ``train --recipe self``)."""
    state = prepare(mining_id, progress, dispatch=False)
    mining = MiningRun.objects.select_related("training_run").get(pk=mining_id)
    if state is None or mining.is_finished:
        return mining
    for number in range(state.n_chunks):
        verify(mining_id, number, dispatch=False)
        if progress is not None:
            progress("verification", number + 1, state.n_chunks)
    if state.n_chunks == 0:
        verify(mining_id, -1, dispatch=False)
    return MiningRun.objects.get(pk=mining_id)


# -- samples -------------------------------------------------------------------------------------------------


def sample_pairs(result: MiningResult, source: MiningSource, config: MiningConfig) -> list[dict[str, object]]:
    """Up to `SAMPLE_PAIRS` positives from different pseudo-landmarks (largest first), each with a match
    drawing as a JPEG data URI; a pair whose images cannot be read is skipped and logged."""
    by_label: dict[str, tuple[ImageKey, ImageKey, int]] = {}
    for a, b, inliers in sorted(result.positives, key=lambda p: -p[2]):
        by_label.setdefault(result.labels[a], (a, b, inliers))
    samples = []
    for label in list(result.components)[:SAMPLE_PAIRS]:
        if label not in by_label:
            continue
        a, b, inliers = by_label[label]
        try:
            drawing = _drawing(source, config, a, b)
        except (ImageLoadError, OSError, KeyError) as error:
            logger.warning("mining sample %s-%s not drawn: %s", a, b, error)
            continue
        samples.append({"a": str(a), "b": str(b), "inliers": inliers, "landmark": label, "drawing": drawing})
    return samples


def _drawing(source: MiningSource, config: MiningConfig, a: ImageKey, b: ImageKey) -> str:
    loaded = source.features.load_many([a, b])
    scorer = SiftScorer(source.features, config.sift, config.verification, min_inliers=0)
    scores = scorer.score(QueryFeatures(vector=np.zeros(0, np.float32), sift=loaded[a]), [b])
    evidence = (scores.evidence or [None])[0]
    points = evidence.points if evidence is not None else np.zeros((0, 4), np.float32)
    left = np.asarray(load_image(source.photo(a)))
    right = np.asarray(load_image(source.photo(b)))
    canvas = draw_matches(left, right, points, height=_DRAWING_HEIGHT)
    ok, jpeg = cv2.imencode(".jpg", cv2.cvtColor(canvas, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 80])
    if not ok:
        raise OSError("could not encode the match drawing")
    return "data:image/jpeg;base64," + base64.b64encode(jpeg.tobytes()).decode()


def component_bars(sizes: Sequence[int], limit: int = 40) -> list[dict[str, float]]:
    """Bars of the component-size plot (largest ``limit`` components), in a 600 x 160 viewBox."""
    shown = list(sizes[:limit])
    if not shown:
        return []
    width = 600 / len(shown)
    top = max(shown)
    return [
        {
            "x": i * width,
            "width": max(width - 2, 1),
            "height": 150 * s / top,
            "y": 155 - 150 * s / top,
            "size": s,
        }
        for i, s in enumerate(shown)
    ]
