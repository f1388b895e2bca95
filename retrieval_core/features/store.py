"""Local features on disk: one small ``.npz`` per image, versioned by the extractor's settings.

Layout ``root/<extractor_key>/<shard>/<image_id>.npz`` where ``shard`` is two hex digits of a hash of the
id, so no directory holds more than ~1/256 of a large collection. Changing extraction settings changes
``extractor_key`` and so starts a fresh directory instead of mixing incompatible descriptors.

A file holds three uncompressed arrays (``np.savez``): ``meta`` (format, width, height, pixel_scale),
``geometry`` (N, 4) float32 ``x, y, scale, angle`` and ``descriptors`` (N, 128) uint8 — uint8 descriptors
barely compress, and few members keep loading 100 candidates per query near 0.1-0.2 ms each. That is the
default format; a store made with a compact ``LocalFeatureFormat`` writes fewer keypoints, 4- or 2-bit
descriptors and 16-bit geometry in the same three members (``retrieval_core.features.compact``).
Bytes go through a ``BlobStore`` (retrieval_core.storage): a local folder by default (writes go to a temp
file in the same directory and are published with ``os.replace``, so a reader never sees half a file), or an
S3-compatible bucket with the same keys (``<extractor_key>/<shard>/<id>.npz`` under the store's prefix), so
that every machine of a deployment reads what any worker wrote. ``load_many`` fetches its ids in one
``get_many`` (concurrent GETs on S3) before parsing them.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import logging
import re
import threading
import zipfile
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import numpy as np

from retrieval_core.features.compact import (
    FULL_FORMAT,
    FULL_FORMAT_VERSION,
    LocalFeatureFormat,
    decode_local_features,
    encode_local_features,
)
from retrieval_core.features.sift import LocalFeatures
from retrieval_core.storage import BlobStore, LocalBlobStore

__all__ = ["FORMAT_VERSION", "LoadedFeatures", "LocalFeatureStore", "PatchStore", "ShardedArrayStore"]

logger = logging.getLogger(__name__)

FORMAT_VERSION = FULL_FORMAT_VERSION  # of the default format; compact files say theirs (compact.py)
_SAFE_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.=+-]{0,199}$")

ImageId = str | int


class LoadedFeatures(dict[ImageId, LocalFeatures]):
    """``load_many`` result: a dict id -> features, plus ``missing`` ids (absent or unreadable files)."""

    def __init__(self, found: dict[ImageId, LocalFeatures], missing: tuple[ImageId, ...]) -> None:
        super().__init__(found)
        self.missing = missing


class ShardedArrayStore:
    """Named numpy arrays per image id at ``<key>/<shard>/<id>.npz`` of a ``BlobStore``, written atomically.

    ``root`` is a folder (a ``LocalBlobStore`` on it, the layout of ``root / key / <shard> / <id>.npz``) or
    any ``BlobStore`` (e.g. ``S3BlobStore``)."""

    def __init__(self, root: Path | BlobStore, key: str) -> None:
        if not _SAFE_NAME.match(key):
            raise ValueError(f"extractor_key must be a plain file name, got {key!r}")
        self.blobs: BlobStore = root if isinstance(root, BlobStore) else LocalBlobStore(Path(root))
        self.extractor_key = key
        # load_many's fetched bytes, per thread: load() (and the decoding of subclasses) reads them through
        # load_arrays instead of fetching again, so a bulk load is one get_many whatever the encoding.
        self._prefetched = threading.local()

    @property
    def root(self) -> Path:
        """The folder of a local store (``ValueError`` for an object store: it has no path)."""
        return self._local().root

    @property
    def directory(self) -> Path:
        """The folder of this key in a local store (``ValueError`` for an object store)."""
        return self.root / self.extractor_key

    def _local(self) -> LocalBlobStore:
        if not isinstance(self.blobs, LocalBlobStore):
            raise ValueError(f"{self.blobs!r} is not a local folder: it has no file paths")
        return self.blobs

    def key_for(self, image_id: ImageId) -> str:
        """The blob key of ``image_id``: ``<extractor_key>/<shard>/<id>.npz``."""
        name = str(image_id)
        if not _SAFE_NAME.match(name):
            raise ValueError(f"image id {image_id!r} must be letters, digits and _ . = + - only")
        shard = hashlib.blake2b(name.encode(), digest_size=1).hexdigest()
        return f"{self.extractor_key}/{shard}/{name}.npz"

    def path_for(self, image_id: ImageId) -> Path:
        """The file of ``image_id`` in a local store (``ValueError`` for an object store)."""
        return self._local().path(self.key_for(image_id))

    def describe(self, image_id: ImageId) -> str:
        """Where the features of ``image_id`` live (a path or ``s3://...``), for messages."""
        return self.blobs.describe(self.key_for(image_id))

    def save_arrays(self, image_id: ImageId, **arrays: np.ndarray) -> str:
        """Write (or overwrite) the arrays of ``image_id`` atomically; returns where they went."""
        buffer = io.BytesIO()
        np.savez(buffer, **arrays)  # type: ignore[arg-type]
        key = self.key_for(image_id)
        self.blobs.put(key, buffer.getvalue())
        return self.blobs.describe(key)

    def load_arrays(self, image_id: ImageId, names: tuple[str, ...]) -> tuple[np.ndarray, ...]:
        """The named arrays of ``image_id``; ``KeyError`` if absent, ``ValueError`` if unreadable."""
        key = self.key_for(image_id)
        prefetched: dict[str, bytes] | None = getattr(self._prefetched, "blobs", None)
        try:
            # one read; parsing from memory is faster than from the file
            raw = prefetched[key] if prefetched is not None else self.blobs.get(key)
        except KeyError:
            raise KeyError(image_id) from None
        try:
            with np.load(io.BytesIO(raw), allow_pickle=False) as data:
                return tuple(data[name] for name in names)
        except (OSError, KeyError, ValueError, zipfile.BadZipFile, EOFError) as error:
            raise ValueError(f"{self.blobs.describe(key)}: unreadable stored features ({error})") from error

    def has(self, image_id: ImageId) -> bool:
        return self.blobs.exists(self.key_for(image_id))

    def delete(self, image_id: ImageId) -> bool:
        """Remove the features of ``image_id``; returns whether a file was there."""
        return self.blobs.delete(self.key_for(image_id))

    def ids(self) -> Iterator[str]:
        """Ids stored under this key (as strings), in no particular order."""
        for key in self.blobs.list(f"{self.extractor_key}/"):
            shard_and_name = key.split("/")[1:]
            if len(shard_and_name) == 2 and shard_and_name[1].endswith(".npz"):
                yield shard_and_name[1].removesuffix(".npz")

    def is_empty(self) -> bool:
        """Whether nothing is stored under this key (e.g. patches were never extracted)."""
        return next(iter(self.blobs.list(f"{self.extractor_key}/")), None) is None

    def _load_many(self, image_ids: Iterable[ImageId], load: Callable[[ImageId], object]) -> LoadedFeatures:
        """``load`` for each id, with every id's bytes fetched beforehand in one ``get_many``."""
        ids = list(image_ids)
        keys = []
        for image_id in ids:
            with contextlib.suppress(ValueError):  # a bad id is reported by _load_many below
                keys.append(self.key_for(image_id))
        self._prefetched.blobs = self.blobs.get_many(keys)
        try:
            return _load_many(ids, load)
        finally:
            self._prefetched.blobs = None


class LocalFeatureStore(ShardedArrayStore):
    """Save and load ``LocalFeatures`` per image id under ``root / extractor_key``."""

    def __init__(self, root: Path | BlobStore, key: str, fmt: LocalFeatureFormat = FULL_FORMAT) -> None:
        """``fmt``: how ``save`` encodes (``retrieval_core.features.compact``); ``load`` reads any format.
        ``key`` must end with ``fmt.key`` (``local_features_key`` adds it), so one folder holds one format."""
        if not key.endswith(fmt.key):
            raise ValueError(f"extractor_key {key!r} does not name its format: it must end with {fmt.key!r}")
        super().__init__(root, key)
        self.format = fmt

    def save(self, image_id: ImageId, features: LocalFeatures) -> str:
        """Write (or overwrite) the features of ``image_id`` atomically, encoded in ``self.format``;
        returns where they went."""
        return self.save_arrays(image_id, **encode_local_features(features, self.format))

    def load(self, image_id: ImageId) -> LocalFeatures:
        """Features of ``image_id``; raises ``KeyError`` if absent, ``ValueError`` if unreadable."""
        arrays = self.load_arrays(image_id, ("meta", "geometry", "descriptors"))
        try:
            return decode_local_features(*arrays)
        except ValueError as error:
            raise ValueError(f"{self.describe(image_id)}: {error}") from error

    def load_many(self, image_ids: Iterable[ImageId]) -> LoadedFeatures:
        """Load ids in one go; absent or corrupt files are listed in ``.missing`` and logged, not raised."""
        return self._load_many(image_ids, self.load)


class PatchStore(ShardedArrayStore):
    """CNN patch descriptors ``(n, D)`` per image, stored as float16 (cosines change by < 1e-3)."""

    def save(self, image_id: ImageId, patches: np.ndarray) -> str:
        return self.save_arrays(image_id, patches=np.asarray(patches, np.float16))

    def load(self, image_id: ImageId) -> np.ndarray:
        return self.load_arrays(image_id, ("patches",))[0].astype(np.float32)

    def load_many(self, image_ids: Iterable[ImageId]) -> LoadedFeatures:
        return self._load_many(image_ids, self.load)


def _load_many(image_ids: Iterable[ImageId], load: Callable[[ImageId], object]) -> LoadedFeatures:
    found: dict[ImageId, object] = {}
    missing: list[ImageId] = []
    for image_id in image_ids:
        try:
            found[image_id] = load(image_id)
        except KeyError:
            missing.append(image_id)
        except ValueError as error:
            logger.warning("skipping stored features of %r: %s", image_id, error)
            missing.append(image_id)
    if missing:
        logger.warning(
            "no stored features for %d of %d ids (e.g. %r)",
            len(missing),
            len(found) + len(missing),
            missing[0],
        )
    return LoadedFeatures(found, tuple(missing))  # type: ignore[arg-type]
