"""The serving LRU in front of the local-feature store: hits skip the store, the byte bound holds."""

from __future__ import annotations

from collections.abc import Hashable, Sequence

import numpy as np

from retrieval_core.features.sift import LocalFeatures
from retrieval_core.rerank.feature_lru import CachedFeatureSource, feature_bytes


def _features(n: int) -> LocalFeatures:
    return LocalFeatures(np.zeros((n, 2), np.float32), np.ones((n, 128), np.uint8), (10, 10))


class CountingStore:
    def __init__(self, sizes: dict[Hashable, int]) -> None:
        self.sizes = sizes
        self.asked: list[list[Hashable]] = []

    def load_many(self, image_ids: Sequence[Hashable]) -> dict[Hashable, LocalFeatures]:
        self.asked.append(list(image_ids))
        return {i: _features(self.sizes[i]) for i in image_ids if i in self.sizes}


def test_hits_are_served_from_memory_and_the_byte_bound_evicts_the_oldest() -> None:
    store = CountingStore({1: 10, 2: 10, 3: 10, 4: 10})
    one = feature_bytes(_features(10))
    cache = CachedFeatureSource(store, max_bytes=3 * one)

    assert set(cache.load_many([1, 2, 9])) == {1, 2}  # 9 has no features: absent, as from the store
    assert set(cache.load_many([1, 2, 3])) == {1, 2, 3}
    assert store.asked[-1] == [3]  # only the miss went to the store
    cache.load_many([1])  # 1 is now the most recent, so 2 is the oldest
    cache.load_many([4])
    assert cache.bytes <= 3 * one
    store.asked.clear()
    cache.load_many([1, 2, 3, 4])
    assert store.asked == [[2]]
    assert cache.hits > 0 and cache.misses > 0


def test_a_zero_bound_caches_nothing() -> None:
    store = CountingStore({1: 5})
    cache = CachedFeatureSource(store, max_bytes=0)
    cache.load_many([1])
    cache.load_many([1])
    assert store.asked == [[1], [1]] and cache.bytes == 0
