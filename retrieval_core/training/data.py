"""A torch `Dataset` over `CollectionItem`s: decoded, transformed images with integer landmark labels."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

from retrieval_core.datasets.collection import UNLABELLED, CollectionItem
from retrieval_core.imaging import ImageLoadError, load_image

__all__ = ["CollectionDataset", "SampleKey", "Transform"]

Transform = Callable[[Image.Image, np.random.Generator], torch.Tensor]
SampleKey = int | tuple[int, int]
"""An item index, or ``(index, sample_seed)`` to draw that sample's augmentation from ``sample_seed``."""


class CollectionDataset(Dataset[tuple[torch.Tensor, int]]):
    """``dataset[key] -> (image (3, H, W) uint8, label)``, the label indexing ``classes``.

    An integer key augments with a generator seeded by ``(seed, index)``: the same every time (for checks
    and evaluation). Training passes ``(index, sample_seed)`` so each epoch and step draws afresh, yet
    reproducibly, whatever thread loads the sample.

    Args:
        items: labelled items (an unlabelled one is an error: it has no class to learn).
        transform: `TrainTransform`, `EvalTransform` or any ``(PIL image, rng) -> tensor``.
        classes: landmark names in label order; default: the items' landmarks, sorted.
        seed: mixed into every sample's generator.
        decode_long_side: let JPEGs be DCT-decoded down to about this long side (much faster for large
            photos); None decodes at full size.
    """

    def __init__(
        self,
        items: Sequence[CollectionItem],
        transform: Transform,
        classes: Sequence[str] | None = None,
        seed: int = 0,
        decode_long_side: int | None = None,
    ) -> None:
        self.items = tuple(items)
        unlabelled = [item.relpath for item in self.items if item.landmark == UNLABELLED]
        if unlabelled:
            raise ValueError(
                f"{len(unlabelled)} unlabelled item(s) cannot be trained on, e.g. {unlabelled[0]}"
            )
        self.classes = tuple(sorted({item.landmark for item in self.items}) if classes is None else classes)
        label_of = {name: i for i, name in enumerate(self.classes)}
        unknown = sorted({item.landmark for item in self.items} - set(label_of))
        if unknown:
            raise ValueError(f"landmark(s) missing from classes: {', '.join(unknown[:5])}")
        self.labels: list[int] = [label_of[item.landmark] for item in self.items]
        self.transform = transform
        self.seed = seed
        self.decode_long_side = decode_long_side

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, key: SampleKey) -> tuple[torch.Tensor, int]:
        index, entropy = (
            (key[0], [self.seed, 1, key[1]]) if isinstance(key, tuple) else (key, [self.seed, 0, key])
        )
        item = self.items[index]
        try:
            image = load_image(item.path, draft_long_side=self.decode_long_side)
        except ImageLoadError as e:
            raise ImageLoadError(f"{item.relpath}: {e}") from None
        return self.transform(image, np.random.default_rng(entropy)), self.labels[index]
