"""One decode policy for a photo, at index time and at query time, for global and local features alike.

A JPEG much larger than needed is DCT-decoded at reduced scale, keeping at least twice the network's input
size on its long side (see ``GlobalDescriptorExtractor.extract_paths``); SIFT then shrinks the same pixels to
its own ``long_side``. Query and index images are decoded by this one function, so their features are
computed from the same pixels.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image

from retrieval_core.features.compact import FULL_FORMAT, LocalFeatureFormat, as_stored
from retrieval_core.features.global_ import DRAFT_MARGIN
from retrieval_core.features.sift import LocalFeatures, SiftConfig, extract_sift
from retrieval_core.imaging import ImageSource, load_image
from retrieval_core.models.embedding import EmbeddingConfig

__all__ = ["DRAFT_MARGIN", "DecodePolicy", "decode", "index_local_features", "local_features_key"]


@dataclass(frozen=True)
class DecodePolicy:
    """``draft_long_side``: smallest long side a JPEG may be DCT-decoded to (None: full size);
    ``max_pixels``: decompression-bomb limit."""

    draft_long_side: int | None = DRAFT_MARGIN * EmbeddingConfig().image_size
    max_pixels: int = 64_000_000

    @classmethod
    def for_embedding(cls, embedding: EmbeddingConfig, max_pixels: int = 64_000_000) -> DecodePolicy:
        return cls(DRAFT_MARGIN * embedding.image_size, max_pixels)


def decode(source: ImageSource, policy: DecodePolicy) -> Image.Image:
    """RGB image, EXIF orientation applied; raises ``ImageLoadError`` for bad input."""
    return load_image(source, max_pixels=policy.max_pixels, draft_long_side=policy.draft_long_side)


def index_local_features(
    source: ImageSource, sift: SiftConfig, policy: DecodePolicy, fmt: LocalFeatureFormat = FULL_FORMAT
) -> LocalFeatures:
    """SIFT of an index image, decoded exactly as a query is, as a store in ``fmt`` keeps it (the indexing
    task and the evaluation cache both call this; VLAD is then computed from what is stored)."""
    return as_stored(extract_sift(np.asarray(decode(source, policy)), sift), fmt)


def local_features_key(sift: SiftConfig, policy: DecodePolicy, fmt: LocalFeatureFormat = FULL_FORMAT) -> str:
    """Names stored local features by everything that changes them: SIFT settings, the decode draft and the
    storage format (nothing for today's full format)."""
    return f"{sift.key}-d{policy.draft_long_side or 0}{fmt.key}"
