"""Validation mAP@k of the model being trained: what decides which epoch becomes ``best.pt``.

The model embeds the validation queries and index, ranks by cosine and is scored with GLDv2 mAP@k
(`retrieval_core.eval.metrics`), decoding every image exactly as indexing does.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image

from retrieval_core.datasets.collection import CollectionItem
from retrieval_core.eval.metrics import mean_average_precision_at_k
from retrieval_core.eval.splits import relevant_index_images
from retrieval_core.features.global_ import GlobalDescriptorExtractor
from retrieval_core.imaging import ImageLoadError, load_image, resize_long_side
from retrieval_core.models.embedding import EmbeddingConfig, EmbeddingNet

__all__ = ["ValidationSet", "Validator", "score_validation"]

# Validation sets up to this many images are decoded once and kept in memory (about 0.2 MB each at 224 px).
CACHE_IMAGES = 4096


@dataclass(frozen=True)
class ValidationSet:
    """Labelled validation queries and the index they are searched in (e.g. a `CollectionSplit`'s
    ``validation`` and ``index``); never the queries results are reported on.

    A query is scored against the index images of its landmark (`relevant_index_images`); a query that is
    also in the index does not count as its own hit.
    """

    queries: Sequence[CollectionItem]
    index: Sequence[CollectionItem]
    k: int = 100


def score_validation(
    net: EmbeddingNet,
    validation: ValidationSet,
    embedding: EmbeddingConfig,
    device: str | torch.device = "cpu",
) -> float:
    """Validation mAP@k of ``net`` as `train` scores its epochs (images sized by ``embedding``).

    Scoring once, it decodes in threads without keeping the images (`train` keeps small sets decoded).
    """
    return Validator(validation, embedding, cache_images=0).score(net, torch.device(device))


class Validator:
    """Scores the current model on a `ValidationSet` after every epoch.

    Up to ``cache_images`` images are decoded and resized once and kept; larger sets are decoded afresh
    each time (threaded, by `GlobalDescriptorExtractor.extract_paths`) rather than held in memory. Both
    decode exactly as indexing does, and images that fail to decode are left out of that score.
    """

    def __init__(
        self, validation: ValidationSet, embedding: EmbeddingConfig, cache_images: int = CACHE_IMAGES
    ) -> None:
        self.embedding = embedding
        self.k = validation.k
        self.queries, self.index = list(validation.queries), list(validation.index)
        if not any(relevant_index_images(self.queries, self.index).values()):
            raise ValueError("no validation query has a relevant index image (same landmark)")
        self._cache: dict[str, Image.Image | None] | None = None
        if len(self.queries) + len(self.index) <= cache_images:
            self._cache = {item.relpath: self._decode(item) for item in (*self.queries, *self.index)}

    def _decode(self, item: CollectionItem) -> Image.Image | None:
        size = self.embedding.image_size
        try:
            return resize_long_side(load_image(item.path, draft_long_side=2 * size), size)
        except ImageLoadError:
            return None

    def _embed(
        self, extractor: GlobalDescriptorExtractor, items: list[CollectionItem]
    ) -> tuple[list[CollectionItem], np.ndarray]:
        if self._cache is None:
            result = extractor.extract_paths([item.path for item in items])
            return [items[i] for i in result.indices], result.vectors
        kept = [item for item in items if self._cache[item.relpath] is not None]
        images = [self._cache[item.relpath] for item in kept]
        return kept, extractor.extract(images)  # type: ignore[arg-type]

    @torch.no_grad()
    def score(self, net: EmbeddingNet, device: torch.device) -> float:
        """mAP@k of cosine ranking with the current weights (leaves ``net`` in eval mode)."""
        extractor = GlobalDescriptorExtractor(net, self.embedding, device)
        queries, query_vectors = self._embed(extractor, self.queries)
        index, index_vectors = self._embed(extractor, self.index)
        if not queries or not index:
            return 0.0
        scores = query_vectors @ index_vectors.T
        depth = min(self.k + 1, len(index))  # +1: a query found in the index is junk, not a miss
        top = np.argpartition(-scores, depth - 1, axis=1)[:, :depth]
        results = {}
        for query, row, candidates in zip(queries, scores, top, strict=True):
            ordered = candidates[np.lexsort((candidates, -row[candidates]))]  # by score, ties by position
            results[query.relpath] = [index[j].relpath for j in ordered]
        ground_truth = relevant_index_images(queries, index)
        result = mean_average_precision_at_k(results, ground_truth, k=self.k, self_is_junk=True)
        return float(result.mean_ap or 0.0)
