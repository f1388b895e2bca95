"""An in-memory LRU in front of a local-feature store, bounded in bytes.

Every re-rank loads ~100 candidates' features; popular places come back query after query, and reading and
decoding their files was ~50 ms of a search. Thread-safe (one cache per server process, shared by its
threads). Features are immutable per store key (new extraction settings make a new key, so a new cache),
and a removed image is never a candidate again, so nothing needs invalidating.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Hashable, Mapping, Sequence

from retrieval_core.features.sift import LocalFeatures
from retrieval_core.rerank.sift_scorer import LocalFeatureSource

__all__ = ["CachedFeatureSource", "feature_bytes"]


def feature_bytes(features: LocalFeatures) -> int:
    """Memory held by one image's arrays."""
    extra = sum(a.nbytes for a in (features.scales, features.angles) if a is not None)
    return int(features.keypoints.nbytes + features.descriptors.nbytes + extra)


class CachedFeatureSource:
    """``load_many`` through an LRU of at most ``max_bytes``; misses are read from ``source`` in one call."""

    def __init__(self, source: LocalFeatureSource, max_bytes: int) -> None:
        if max_bytes < 0:
            raise ValueError(f"max_bytes must be >= 0, got {max_bytes}")
        self.source = source
        self.max_bytes = max_bytes
        self.bytes = 0
        self.hits = 0
        self.misses = 0
        self._entries: OrderedDict[Hashable, LocalFeatures] = OrderedDict()
        self._lock = threading.Lock()

    def load_many(self, image_ids: Sequence[Hashable]) -> Mapping[Hashable, LocalFeatures]:
        found: dict[Hashable, LocalFeatures] = {}
        with self._lock:
            for image_id in image_ids:
                features = self._entries.get(image_id)
                if features is not None:
                    self._entries.move_to_end(image_id)
                    found[image_id] = features
            self.hits += len(found)
        wanted = [i for i in image_ids if i not in found]
        if not wanted:
            return found
        loaded = self.source.load_many(wanted)
        with self._lock:
            self.misses += len(wanted)
            for image_id, features in loaded.items():
                self._insert(image_id, features)
        return {**found, **loaded}

    def _insert(self, image_id: Hashable, features: LocalFeatures) -> None:
        size = feature_bytes(features)
        if size > self.max_bytes or image_id in self._entries:
            return
        self._entries[image_id] = features
        self.bytes += size
        while self.bytes > self.max_bytes:
            _, evicted = self._entries.popitem(last=False)
            self.bytes -= feature_bytes(evicted)
