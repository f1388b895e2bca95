"""Global descriptors: one L2-normalised vector per image, for nearest-neighbour search.

Images keep their aspect ratio (long side resized to ``config.image_size``), so a batch can only hold
images of one shape: images are bucketed by resized shape, which makes batched results equal to one-at-a-
time results. `extract_paths` decodes files in a thread pool ahead of the network (PIL and torch release
the GIL), so indexing a folder runs close to the speed of the network alone.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np
import torch
from PIL import Image

from retrieval_core.imaging import ImageLoadError, load_image, resize_long_side
from retrieval_core.models.embedding import EmbeddingConfig, EmbeddingNet, build_embedding_net
from retrieval_core.rerank.patches import select_patches

__all__ = ["ExtractionResult", "GlobalDescriptorExtractor", "ImageFailure"]

Source = str | os.PathLike[str] | bytes
ProgressCallback = Callable[[int, int], None]

# JPEGs are DCT-decoded down to no less than this many times the network's input size (query and
# index images alike: retrieval_core.search.decode).
DRAFT_MARGIN = 2


class ImageFailure(NamedTuple):
    """An input that produced no vector: its position in the input and the user-facing reason."""

    index: int  # type: ignore[assignment]  # shadows tuple.index; callers read the field
    message: str


@dataclass(frozen=True)
class ExtractionResult:
    """Output of `GlobalDescriptorExtractor.extract_paths`.

    Attributes:
        vectors: ``(M, D)`` float32 unit-norm vectors of the M inputs that decoded, in input order.
        indices: ``(M,)`` int64 positions of those inputs, so ``vectors[k]`` belongs to
            ``sources[indices[k]]``.
        failures: the other ``N - M`` inputs, sorted by index.
    """

    vectors: np.ndarray
    indices: np.ndarray
    failures: list[ImageFailure] = field(default_factory=list)
    patches: list[np.ndarray] | None = None
    """With ``patch_top_n > 0``: per vector, its ``(n, D)`` float32 unit patch descriptors (same order)."""


class GlobalDescriptorExtractor:
    """Images → ``(N, D)`` float32 L2-normalised global descriptors with an `EmbeddingNet`.

    Args:
        net: the network; moved to ``device`` and put in eval mode (the caller's object is modified).
        config: the configuration the network was built from (image size, version key).
        device: defaults to CUDA when available, else the CPU.
    """

    def __init__(
        self, net: EmbeddingNet, config: EmbeddingConfig, device: str | torch.device | None = None
    ) -> None:
        self.config = config
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        self._channels_last = self.device.type == "cuda"
        net = net.eval().to(self.device)
        if self._channels_last:
            net = net.to(memory_format=torch.channels_last)
        self.net = net
        self.dim: int = net.dim
        self._mean = torch.tensor(net.mean, device=self.device).view(1, -1, 1, 1)
        self._std = torch.tensor(net.std, device=self.device).view(1, -1, 1, 1)

    @classmethod
    def from_config(
        cls, config: EmbeddingConfig, device: str | torch.device | None = None
    ) -> GlobalDescriptorExtractor:
        return cls(build_embedding_net(config), config, device)

    def preprocess(self, image: Image.Image) -> torch.Tensor:
        """RGB PIL image → ``(3, H, W)`` uint8 tensor with ``max(H, W) == config.image_size``."""
        rgb = image if image.mode == "RGB" else image.convert("RGB")
        resized = resize_long_side(rgb, self.config.image_size)
        return torch.from_numpy(np.array(resized, dtype=np.uint8)).permute(2, 0, 1)

    def embed_batch(self, batch: torch.Tensor) -> np.ndarray:
        """``(B, 3, H, W)`` uint8 images of one shape → ``(B, D)`` float32 unit-norm vectors."""
        return self.embed_batch_with_patches(batch, 0)[0]

    def embed_batch_with_patches(
        self, batch: torch.Tensor, patch_top_n: int
    ) -> tuple[np.ndarray, list[np.ndarray]]:
        """Vectors plus, per image, the ``patch_top_n`` strongest feature-map locations as unit ``(n, D)``
        patch descriptors, from the same forward pass (the thesis recomputed them per query)."""
        with torch.inference_mode():
            x = batch.to(self.device, non_blocking=True)
            if self._channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            x = x.float().div_(255.0).sub_(self._mean).div_(self._std)
            feature_map = self.net.forward_features(x)
            vectors = self.net.embed_feature_map(feature_map).float().cpu().numpy()
            if patch_top_n <= 0:
                return vectors, []
            fmap = feature_map.float().cpu()
            return vectors, [select_patches(fmap[i], patch_top_n) for i in range(len(fmap))]

    def extract(self, images: Sequence[Image.Image], batch_size: int = 16) -> np.ndarray:
        """Decoded images → ``(N, D)`` float32 vectors, row i for ``images[i]``."""
        return self.extract_with_patches(images, 0, batch_size)[0]

    def extract_with_patches(
        self, images: Sequence[Image.Image], patch_top_n: int, batch_size: int = 16
    ) -> tuple[np.ndarray, list[np.ndarray]]:
        """Decoded images → ``(N, D)`` vectors and (if ``patch_top_n`` > 0) N patch sets."""
        out = np.empty((len(images), self.dim), dtype=np.float32)
        patches: list[np.ndarray] = [np.empty((0, self.dim), np.float32)] * len(images)
        buckets = _ShapeBuckets(batch_size, max_pending=max(len(images), 1))
        ready = [b for i, img in enumerate(images) for b in buckets.add(i, self.preprocess(img))]
        for indices, batch in [*ready, *buckets.drain()]:
            out[indices], batch_patches = self.embed_batch_with_patches(batch, patch_top_n)
            for index, patch_set in zip(indices, batch_patches, strict=False):
                patches[index] = patch_set
        return out, (patches if patch_top_n > 0 else [])

    def extract_paths(
        self,
        sources: Sequence[Source],
        batch_size: int = 16,
        progress: ProgressCallback | None = None,
        *,
        workers: int | None = None,
        patch_top_n: int = 0,
        decode: Callable[[Source], Image.Image] | None = None,
    ) -> ExtractionResult:
        """Decode and embed image files (paths or encoded bytes), decoding in threads ahead of the network.

        A file that cannot be decoded (see `load_image`) becomes an `ImageFailure` and the rest go on; any
        other error propagates. JPEGs of more than ``2 * image_size`` on their long side are decoded at
        reduced DCT scale, keeping at least twice the final size so the last resize still antialiases
        much like a full decode (at 384 px, cosine to vectors of full decodes: min 0.9997 on 2560-px
        JPEGs; decoding down to 1x instead gave 0.995 there and 0.974 on 1280-px photos). Bytes are
        accepted too; for a single query image, `load` + `extract` decode exactly the same way.

        Args:
            sources: N files.
            batch_size: most images per forward pass.
            progress: called as ``progress(done, N)`` after each batch and each failure.
            workers: decoding threads; defaults to ``min(8, cpu_count)``.
            patch_top_n: also keep this many CNN patch descriptors per image (``result.patches``).
            decode: how a file becomes an RGB image (default `load`); the product passes its one decode
                policy so index and query images are decoded alike.
        """
        total = len(sources)
        out = np.empty((total, self.dim), dtype=np.float32)
        ok = np.zeros(total, dtype=bool)
        patches: list[np.ndarray | None] = [None] * total
        failures: list[ImageFailure] = []
        buckets = _ShapeBuckets(batch_size, max_pending=4 * batch_size)
        done = 0

        def run(batches: Iterable[tuple[list[int], torch.Tensor]]) -> None:
            nonlocal done
            for indices, batch in batches:
                out[indices], batch_patches = self.embed_batch_with_patches(batch, patch_top_n)
                for index, patch_set in zip(indices, batch_patches, strict=False):
                    patches[index] = patch_set
                ok[indices] = True
                done += len(indices)
                if progress is not None:
                    progress(done, total)

        workers = workers or min(8, os.cpu_count() or 1)
        lookahead = max(2 * batch_size, 2 * workers)
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="decode") as pool:
            queue: deque[tuple[int, Future[torch.Tensor]]] = deque()
            todo = iter(enumerate(sources))

            def submit(n: int) -> None:
                for i, src in todo:
                    queue.append((i, pool.submit(self._load, src, decode)))
                    n -= 1
                    if n == 0:
                        return

            submit(lookahead)
            try:
                while queue:
                    i, future = queue.popleft()
                    submit(1)
                    try:
                        tensor = future.result()
                    except ImageLoadError as e:
                        failures.append(ImageFailure(i, str(e)))
                        done += 1
                        if progress is not None:
                            progress(done, total)
                        continue
                    run(buckets.add(i, tensor))
                run(buckets.drain())
            finally:  # on an error, do not decode the look-ahead for nothing
                for _, future in queue:
                    future.cancel()

        indices = np.flatnonzero(ok)
        return ExtractionResult(
            vectors=out[indices],
            indices=indices.astype(np.int64),
            failures=failures,
            patches=[patches[i] for i in indices] if patch_top_n > 0 else None,  # type: ignore[misc]
        )

    def load(self, source: Source, *, max_pixels: int = 64_000_000) -> Image.Image:
        """`load_image` with the decode policy `extract_paths` uses, so queries match indexed vectors.

        Raises:
            ImageLoadError: see `load_image`.
        """
        draft = DRAFT_MARGIN * self.config.image_size
        return load_image(source, max_pixels=max_pixels, draft_long_side=draft)

    def _load(self, source: Source, decode: Callable[[Source], Image.Image] | None = None) -> torch.Tensor:
        return self.preprocess(decode(source) if decode is not None else self.load(source))


class _ShapeBuckets:
    """Groups ``(3, H, W)`` tensors by shape into batches of at most ``batch_size``.

    A bucket is emitted when full; when more than ``max_pending`` tensors wait, the fullest bucket is
    emitted early, bounding memory when shapes are many.
    """

    def __init__(self, batch_size: int, max_pending: int) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        self.batch_size = batch_size
        self.max_pending = max_pending
        self._buckets: dict[tuple[int, ...], list[tuple[int, torch.Tensor]]] = {}
        self._pending = 0

    def add(self, index: int, tensor: torch.Tensor) -> list[tuple[list[int], torch.Tensor]]:
        bucket = self._buckets.setdefault(tuple(tensor.shape), [])
        bucket.append((index, tensor))
        self._pending += 1
        if len(bucket) >= self.batch_size:
            return [self._pop(tuple(tensor.shape))]
        if self._pending > self.max_pending:
            return [self._pop(max(self._buckets, key=lambda s: len(self._buckets[s])))]
        return []

    def drain(self) -> list[tuple[list[int], torch.Tensor]]:
        return [self._pop(shape) for shape in list(self._buckets)]

    def _pop(self, shape: tuple[int, ...]) -> tuple[list[int], torch.Tensor]:
        items = self._buckets.pop(shape)
        self._pending -= len(items)
        return [i for i, _ in items], torch.stack([t for _, t in items])
