"""Mining a collection folder: global vectors and RootSIFT into a `FeatureCache`, an exact index, `mine`.

The catalogue mines from what it already stores (Milvus vectors, the local-feature store); a folder has
neither, so `prepare_collection_features` extracts them once with the product's own index-time functions
(resumable: the cache keeps what was extracted) and `CollectionFeatures` offers them to `mine`.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from retrieval_core.eval.extraction import ensure_cnn_features, ensure_sift, global_key
from retrieval_core.eval.feature_disk_cache import FeatureCache
from retrieval_core.features.global_ import GlobalDescriptorExtractor
from retrieval_core.features.sift import LocalFeatures, SiftConfig
from retrieval_core.index.exact import ExactIndex
from retrieval_core.search.decode import DecodePolicy, local_features_key
from retrieval_core.training.pair_mining import Progress

__all__ = ["CachedSift", "CollectionFeatures", "open_cached_sift", "prepare_collection_features"]

DEFAULT_SIFT = SiftConfig(max_keypoints=1000, long_side=640)
_SIFT_KEY_FILE = "mining-sift-key.txt"


@dataclass(frozen=True)
class CachedSift:
    """`LocalFeatureSource` over one SIFT key of a `FeatureCache`."""

    cache: FeatureCache
    key: str
    known: frozenset[str]

    def load_many(self, image_ids: Sequence[Hashable]) -> Mapping[Hashable, LocalFeatures]:
        wanted = [str(i) for i in image_ids if str(i) in self.known]
        found: dict[Hashable, LocalFeatures] = {}
        for image_id, features in self.cache.load_sift(self.key, wanted).items():
            found[image_id] = features
        return found


@dataclass(frozen=True)
class CollectionFeatures:
    """What `mine` needs of a folder: ``index`` (exact, over the global vectors) and ``sift``."""

    ids: tuple[str, ...]
    index: ExactIndex
    sift: CachedSift
    failures: tuple[str, ...]


def prepare_collection_features(
    cache_dir: Path,
    paths: Mapping[str, Path],
    extractor: GlobalDescriptorExtractor,
    sift: SiftConfig = DEFAULT_SIFT,
    *,
    progress: Progress | None = None,
) -> CollectionFeatures:
    """Extract (or load from ``cache_dir``) global vectors by ``extractor`` and RootSIFT by ``sift`` of
    every image in ``paths`` (relpath -> file). Images that cannot be decoded are reported in
    ``failures`` (zero vector, no keypoints: they never pair)."""
    ids = tuple(sorted(paths))
    cache = FeatureCache(Path(cache_dir))
    policy = DecodePolicy.for_embedding(extractor.config)

    def stage(name: str) -> Callable[[int, int], None] | None:
        if progress is None:
            return None
        report = progress

        def forward(done: int, total: int) -> None:
            report(name, done, total)

        return forward

    failures = ensure_cnn_features(cache, extractor, paths, ids, None, progress=stage("embedding"))
    failures += ensure_sift(cache, sift, policy, paths, ids, progress=stage("local features"))
    vectors = cache.load_matrix(global_key(extractor), ids)
    key = local_features_key(sift, policy)
    (Path(cache_dir) / _SIFT_KEY_FILE).write_text(key)
    sift_source = CachedSift(cache, key, frozenset(ids))
    return CollectionFeatures(ids, ExactIndex(ids, vectors), sift_source, tuple(failures))


def open_cached_sift(cache_dir: Path, ids: Sequence[str]) -> CachedSift:
    """The SIFT that `prepare_collection_features` stored in ``cache_dir`` (no model needed)."""
    key = (Path(cache_dir) / _SIFT_KEY_FILE).read_text().strip()
    return CachedSift(FeatureCache(Path(cache_dir)), key, frozenset(ids))
