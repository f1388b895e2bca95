"""Per-image features of an evaluation kept on disk, so re-running with other settings re-extracts nothing.

Arrays (global vectors, CNN patch sets) live per key in ``root/<key>/``: ``rows.<g>.npy`` (every image's
rows stacked), ``offsets.<g>.npy`` ((N + 1,) row offsets), ``seconds.<g>.npy`` (how long each image took to
extract, so query latency can be reported from a cached run) and ``index.json`` (generation ``g`` and the
image ids in row order). A write puts generation ``g + 1`` beside the old one, then replaces
``index.json`` atomically, so an interrupted run leaves a readable cache. A global descriptor is one row
per image. SIFT goes through ``LocalFeatureStore`` under ``root/sift`` (file names are hashes of the ids:
relpaths may hold characters a store name may not), with seconds in ``root/sift/<key>.seconds.json``;
VLAD codebooks lie in ``root/codebooks/<name>.npy``. A key names the extractor's settings
(``EmbeddingConfig.version_key``, ``local_features_key``), so changed settings start a new entry instead of
mixing features.

A key is read whole into memory, which suits evaluation sets up to a few hundred thousand images.
``stats`` counts images computed (``put``) and loaded, per key.
"""

from __future__ import annotations

import functools
import hashlib
import json
import re
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

import numpy as np

from retrieval_core.atomic import atomic_write
from retrieval_core.features.compact import FULL_FORMAT, LocalFeatureFormat
from retrieval_core.features.sift import LocalFeatures
from retrieval_core.features.store import LocalFeatureStore
from retrieval_core.features.vlad import load_codebook, save_codebook

__all__ = ["CacheStats", "FeatureCache"]

_KEY = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.=+-]{0,199}$")
_META = "cache.json"
_ARRAYS = ("rows", "offsets", "seconds")


@dataclass
class CacheStats:
    """Images computed (written) and loaded, per cache key, since the cache object was made."""

    computed: Counter[str] = field(default_factory=Counter)
    loaded: Counter[str] = field(default_factory=Counter)

    @property
    def total_computed(self) -> int:
        return sum(self.computed.values())


@dataclass(frozen=True, eq=False)
class _Block:
    ids: list[str]
    rows: np.ndarray
    offsets: np.ndarray
    seconds: np.ndarray
    generation: int = 0

    def position(self) -> dict[str, int]:
        return {image_id: i for i, image_id in enumerate(self.ids)}


class FeatureCache:
    """Features per (key, image id) under ``root``, bound to one collection folder (``collection``)."""

    def __init__(self, root: Path, collection: Path | None = None) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.stats = CacheStats()
        self._blocks: dict[str, _Block] = {}
        if collection is not None:
            self._bind(Path(collection).resolve())

    # Arrays ------------------------------------------------------------------------------------------

    def missing(self, key: str, ids: Sequence[str]) -> list[str]:
        """Ids of ``ids`` without features under ``key``, in the given order."""
        known = self._block(key).position()
        return [image_id for image_id in ids if image_id not in known]

    def put(self, key: str, arrays: Mapping[str, np.ndarray], seconds: Mapping[str, float]) -> None:
        """Store one array per id (rows along axis 0; a 1-D array is one row) and its extraction time."""
        if not arrays:
            return
        block = self._block(key)
        keep = [i for i, image_id in enumerate(block.ids) if image_id not in arrays]
        new_ids = list(arrays)
        new_rows = [np.atleast_2d(np.asarray(arrays[image_id])) for image_id in new_ids]
        width = {r.shape[1:] for r in new_rows} | ({block.rows.shape[1:]} if block.ids else set())
        dtypes = {r.dtype for r in new_rows} | ({block.rows.dtype} if block.ids else set())
        if len(width) != 1 or len(dtypes) != 1:
            raise ValueError(f"arrays under {key!r} must share row shape and dtype, got {width} / {dtypes}")
        old_rows = [block.rows[block.offsets[i] : block.offsets[i + 1]] for i in keep]
        rows = [*old_rows, *new_rows]
        counts = np.array([len(r) for r in rows], np.int64)
        merged = _Block(
            ids=[block.ids[i] for i in keep] + new_ids,
            rows=np.concatenate(rows) if rows else block.rows,
            offsets=np.concatenate([[0], np.cumsum(counts)]).astype(np.int64),
            seconds=np.concatenate(
                [block.seconds[keep], np.array([float(seconds.get(i, np.nan)) for i in new_ids])]
            ),
        )
        self._write(key, merged)
        self.stats.computed[key] += len(new_ids)

    def load(self, key: str, ids: Sequence[str]) -> list[np.ndarray]:
        """The arrays of ``ids`` (``KeyError`` names the first id without features)."""
        block = self._block(key)
        position = block.position()
        out = []
        for image_id in ids:
            if image_id not in position:
                raise KeyError(f"no {key} features for {image_id}")
            i = position[image_id]
            out.append(block.rows[block.offsets[i] : block.offsets[i + 1]])
        self.stats.loaded[key] += len(out)
        return out

    def load_matrix(self, key: str, ids: Sequence[str]) -> np.ndarray:
        """``(N, D)`` rows of ``ids``, for keys that hold exactly one row per image (global vectors)."""
        arrays = self.load(key, ids)
        if any(len(a) != 1 for a in arrays):
            raise ValueError(f"{key} does not hold one row per image")
        if not arrays:
            return np.zeros((0, *self._block(key).rows.shape[1:]), self._block(key).rows.dtype)
        return np.concatenate(arrays)

    def seconds(self, key: str, ids: Sequence[str]) -> np.ndarray:
        """``(N,)`` extraction seconds of ``ids`` under ``key`` (NaN where not recorded)."""
        block = self._block(key)
        position = block.position()
        return np.array([block.seconds[position[i]] for i in ids], np.float64)

    def nbytes(self, key: str, ids: Sequence[str]) -> int:
        """Bytes the features of ``ids`` take as stored (rows only, no bookkeeping)."""
        return sum(a.nbytes for a in self._peek(key, ids))

    # SIFT --------------------------------------------------------------------------------------------

    def sift_store(self, key: str, fmt: LocalFeatureFormat = FULL_FORMAT) -> LocalFeatureStore:
        """The store of ``key``; ``fmt`` (which ``key`` names, see ``local_features_key``) is for writes."""
        return LocalFeatureStore(self.root / "sift", key, fmt)

    def sift_missing(self, key: str, ids: Sequence[str]) -> list[str]:
        store = self.sift_store(key)
        return [image_id for image_id in ids if not store.has(_file_id(image_id))]

    def put_sift(
        self,
        key: str,
        features: Mapping[str, LocalFeatures],
        seconds: Mapping[str, float],
        fmt: LocalFeatureFormat = FULL_FORMAT,
    ) -> None:
        store = self.sift_store(key, fmt)
        for image_id, feats in features.items():
            store.save(_file_id(image_id), feats)
        log = self._sift_seconds(key)
        log.update({image_id: float(seconds.get(image_id, np.nan)) for image_id in features})
        path = self.root / "sift" / f"{key}.seconds.json"
        atomic_write(path, lambda handle: handle.write(json.dumps(log).encode()))
        self.stats.computed[key] += len(features)

    def load_sift(self, key: str, ids: Sequence[str]) -> dict[str, LocalFeatures]:
        """Features by id; ``KeyError`` for an id never stored."""
        store = self.sift_store(key)
        out = {image_id: store.load(_file_id(image_id)) for image_id in ids}
        self.stats.loaded[key] += len(out)
        return out

    def sift_seconds(self, key: str, ids: Sequence[str]) -> np.ndarray:
        log = self._sift_seconds(key)
        return np.array([log.get(image_id, np.nan) for image_id in ids], np.float64)

    def sift_nbytes(self, key: str, ids: Sequence[str]) -> int:
        store = self.sift_store(key)
        return sum(store.path_for(_file_id(image_id)).stat().st_size for image_id in ids)

    # VLAD codebooks ----------------------------------------------------------------------------------

    def codebook(
        self, name: str, train: Callable[[], np.ndarray], settings: Mapping[str, object]
    ) -> np.ndarray:
        """The ``(k, D)`` codebook stored as ``name``, trained with ``train()`` (and stored) if absent."""
        path = self._directory("codebooks") / f"{self._directory(name).name}.npy"
        if path.is_file():
            self.stats.loaded[name] += 1
            return load_codebook(path)[0]
        centroids = train()
        save_codebook(path, centroids, settings)
        self.stats.computed[name] += 1
        return centroids

    # Internals ---------------------------------------------------------------------------------------

    def _bind(self, collection: Path) -> None:
        """Refuse a cache made for another collection: the same relpath there is another image."""
        meta = self.root / _META
        if meta.is_file():
            bound = json.loads(meta.read_text()).get("collection")
            if bound != str(collection):
                raise ValueError(f"cache {self.root} holds features of {bound}, not of {collection}")
            return
        atomic_write(meta, lambda handle: handle.write(json.dumps({"collection": str(collection)}).encode()))

    def _directory(self, key: str) -> Path:
        if not _KEY.match(key):
            raise ValueError(f"cache key must be a plain file name, got {key!r}")
        return self.root / key

    def _block(self, key: str) -> _Block:
        if key not in self._blocks:
            directory = self._directory(key)
            index = directory / "index.json"
            if index.is_file():
                meta = json.loads(index.read_text())
                g = int(meta["generation"])
                arrays = [np.load(directory / f"{n}.{g}.npy", allow_pickle=False) for n in _ARRAYS]
                rows, offsets, seconds = arrays
                self._blocks[key] = _Block(list(meta["ids"]), rows, offsets, seconds, generation=g)
            else:
                self._blocks[key] = _Block([], np.zeros((0,), np.float32), np.zeros(1, np.int64), np.zeros(0))
        return self._blocks[key]

    def _peek(self, key: str, ids: Sequence[str]) -> list[np.ndarray]:
        block = self._block(key)
        position = block.position()
        return [block.rows[block.offsets[position[i]] : block.offsets[position[i] + 1]] for i in ids]

    def _write(self, key: str, block: _Block) -> None:
        directory = self._directory(key)
        directory.mkdir(parents=True, exist_ok=True)
        old, g = self._block(key).generation, self._block(key).generation + 1
        for name, array in zip(_ARRAYS, (block.rows, block.offsets, block.seconds), strict=True):
            atomic_write(directory / f"{name}.{g}.npy", functools.partial(_save_array, array=array))
        meta = json.dumps({"generation": g, "ids": block.ids}).encode()
        atomic_write(directory / "index.json", lambda handle: handle.write(meta))
        for name in _ARRAYS:
            (directory / f"{name}.{old}.npy").unlink(missing_ok=True)
        self._blocks[key] = _Block(block.ids, block.rows, block.offsets, block.seconds, generation=g)

    def _sift_seconds(self, key: str) -> dict[str, float]:
        path = self.root / "sift" / f"{key}.seconds.json"
        return json.loads(path.read_text()) if path.is_file() else {}


def _save_array(handle: BinaryIO, array: np.ndarray) -> None:
    np.save(handle, array)


def _file_id(image_id: str) -> str:
    """A store-safe file name for any image id (relpaths may hold spaces, accents, slashes)."""
    return hashlib.blake2b(image_id.encode(), digest_size=12).hexdigest()
