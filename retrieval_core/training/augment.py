"""Training augmentation and the matching evaluation transform, both PIL → ``(3, H, W)`` uint8 tensors.

Training batches need one shape, and GeM must not pool over padding (zeros, clamped to ``eps``, would drag
the generalised mean down by an amount that depends on each image's aspect). So training takes a random
*square* crop and resizes it to ``image_size x image_size``: stacking needs no padding and no mask, and,
unlike the thesis's squashing of whole images to 224², the pixels keep their aspect (up to the small
``max_aspect_change`` stretch that serves as augmentation). Evaluation sees whole images with the long side
resized to ``image_size``, exactly as `GlobalDescriptorExtractor` does at indexing time.

Randomness comes from a `numpy.random.Generator` the caller passes in, so a sample's augmentation is a
function of its seed alone, whatever thread or order it is loaded in (required for exact resumption).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image, ImageEnhance

from retrieval_core.imaging import resize_long_side

__all__ = ["EvalTransform", "TrainTransform", "to_uint8_tensor"]


def to_uint8_tensor(image: Image.Image) -> torch.Tensor:
    """RGB PIL image → ``(3, H, W)`` uint8 tensor (normalisation happens on the device, in batches)."""
    return torch.from_numpy(np.array(image.convert("RGB"), dtype=np.uint8)).permute(2, 0, 1).contiguous()


@dataclass(frozen=True)
class TrainTransform:
    """Random square crop → resize to ``image_size²`` → horizontal flip → colour jitter.

    Attributes:
        image_size: output side S.
        scale: range of the crop's area as a fraction of the square on the image's short side; a landmark
            usually fills much of a photo, so crops much smaller than 0.3 often miss it.
        max_aspect_change: the crop's width/height ratio is drawn log-uniformly in ``[1/x, x]`` and
            stretched to a square (1 = no stretch).
        flip: mirror half of the samples (landmarks are rarely chiral at the embedding's resolution; text
            on them is, and is a weak cue).
        jitter: brightness, contrast and saturation factors drawn in ``[1 - jitter, 1 + jitter]``: photos
            of one landmark differ in light, camera and processing.

    Shape: PIL image of any size → ``(3, S, S)`` uint8.
    """

    image_size: int
    scale: tuple[float, float] = (0.4, 1.0)
    max_aspect_change: float = 1.15
    flip: bool = True
    jitter: float = 0.3

    def __post_init__(self) -> None:
        if not 0 < self.scale[0] <= self.scale[1] <= 1:
            raise ValueError(f"scale must satisfy 0 < min <= max <= 1, got {self.scale}")
        if self.max_aspect_change < 1 or not 0 <= self.jitter < 1:
            raise ValueError("max_aspect_change must be >= 1 and jitter in [0, 1)")

    def __call__(self, image: Image.Image, rng: np.random.Generator) -> torch.Tensor:
        width, height = image.size
        side = min(width, height) * math.sqrt(rng.uniform(*self.scale))
        log_change = math.log(self.max_aspect_change)
        ratio = math.exp(rng.uniform(-log_change, log_change))
        box_w = min(width, side * math.sqrt(ratio))
        box_h = min(height, side / math.sqrt(ratio))
        x0 = rng.uniform(0, width - box_w)
        y0 = rng.uniform(0, height - box_h)
        size = (self.image_size, self.image_size)
        out = image.resize(size, Image.Resampling.BICUBIC, box=(x0, y0, x0 + box_w, y0 + box_h))
        if self.flip and rng.random() < 0.5:
            out = out.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        if self.jitter > 0:
            low, high = 1 - self.jitter, 1 + self.jitter
            for enhancer in (ImageEnhance.Brightness, ImageEnhance.Contrast, ImageEnhance.Color):
                out = enhancer(out).enhance(rng.uniform(low, high))
        return to_uint8_tensor(out)


@dataclass(frozen=True)
class EvalTransform:
    """Resize the long side to ``image_size``, keeping the aspect ratio (what indexing does).

    Shape: PIL image → ``(3, H, W)`` uint8 with ``max(H, W) == image_size``.
    """

    image_size: int

    def __call__(self, image: Image.Image, rng: np.random.Generator | None = None) -> torch.Tensor:
        del rng  # deterministic; same call signature as TrainTransform
        return to_uint8_tensor(resize_long_side(image.convert("RGB"), self.image_size))
