import itertools

import numpy as np
import pytest
import torch
from PIL import Image
from skimage import data

from retrieval_core.features.global_ import GlobalDescriptorExtractor
from retrieval_core.imaging import ImageLoadError, load_image
from retrieval_core.models.embedding import EmbeddingConfig

SIZE = 96


@pytest.fixture(scope="module")
def extractor() -> GlobalDescriptorExtractor:
    return GlobalDescriptorExtractor.from_config(EmbeddingConfig(image_size=SIZE), device="cpu")


def _photos() -> list[Image.Image]:
    """Seven crops of real photos in four aspect ratios, so some share a resized shape and some do not."""
    sources = [data.chelsea(), data.coffee(), data.astronaut(), data.rocket()]
    crops = [
        (0, 0, 300, 200),
        (50, 20, 350, 220),
        (0, 0, 200, 300),
        (10, 0, 210, 300),
        (0, 0, 250, 250),
        (0, 0, 320, 180),
        (30, 30, 280, 280),
    ]
    return [Image.fromarray(sources[i % len(sources)]).crop(box) for i, box in enumerate(crops)]


def test_attributes_and_aspect_ratio(extractor):
    assert extractor.dim == 1280
    assert extractor.config.image_size == SIZE
    assert extractor.device.type == "cpu"
    assert tuple(extractor.preprocess(Image.new("RGB", (400, 300))).shape) == (3, 72, 96)
    assert tuple(extractor.preprocess(Image.new("RGB", (30, 60))).shape) == (3, 96, 48)
    with pytest.raises(ImageLoadError, match="empty"):
        extractor.load(b"")


def test_extract_is_unit_norm_deterministic_and_equal_to_one_at_a_time(extractor):
    photos = _photos()
    batched = extractor.extract(photos, batch_size=2)
    assert batched.shape == (7, 1280) and batched.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(batched, axis=1), 1.0, atol=1e-5)
    np.testing.assert_array_equal(extractor.extract(photos, batch_size=2), batched)
    singles = np.concatenate([extractor.extract([p]) for p in photos])
    np.testing.assert_allclose(batched, singles, atol=1e-5, rtol=0)
    np.testing.assert_allclose(extractor.extract(photos, batch_size=16), singles, atol=1e-5, rtol=0)
    # Different photos, different vectors; the same photo is found by its vector.
    sims = batched @ batched.T
    assert (np.argmax(sims, axis=1) == np.arange(7)).all()
    assert sims[0, 2] < 0.95


def test_extract_empty(extractor):
    assert extractor.extract([]).shape == (0, 1280)
    result = extractor.extract_paths([])
    assert result.vectors.shape == (0, 1280) and result.indices.shape == (0,) and result.failures == []


def test_extract_paths_matches_extract_and_reports_failures(extractor, tmp_path):
    photos = _photos()[:4]
    big = Image.fromarray(data.astronaut())  # 512 px: decoded at 1/2 scale (long side >= 2 * SIZE)
    sources: list[object] = []
    for i, img in enumerate([*photos, big]):
        path = tmp_path / f"p{i}.jpg"
        img.save(path, quality=92)
        sources.append(str(path))
    (tmp_path / "empty.jpg").touch()
    (tmp_path / "notes.jpg").write_text("not an image")
    sources[1:1] = [str(tmp_path / "empty.jpg")]
    sources.append(str(tmp_path / "notes.jpg"))
    sources.append(str(tmp_path / "missing.jpg"))
    sources.append((tmp_path / "p0.jpg").read_bytes())  # encoded bytes work too (uploads)

    calls: list[tuple[int, int]] = []
    result = extractor.extract_paths(
        sources, batch_size=2, progress=lambda d, n: calls.append((d, n)), workers=2
    )

    assert result.indices.tolist() == [0, 2, 3, 4, 5, 8]
    assert [f.index for f in sorted(result.failures)] == [1, 6, 7]
    messages = dict(result.failures)
    assert "empty" in messages[1] and "not an image" in messages[6] and "not found" in messages[7]
    assert calls[-1] == (9, 9) and all(a[0] < b[0] for a, b in itertools.pairwise(calls))

    decoded = [extractor.load(sources[i]) for i in result.indices]
    assert decoded[4].size == (256, 256)  # the draft path was taken for the big image
    np.testing.assert_allclose(result.vectors, extractor.extract(decoded), atol=1e-5, rtol=0)
    np.testing.assert_allclose(result.vectors[0], result.vectors[5], atol=1e-6)  # path and bytes agree
    assert decoded[4].size == load_image(sources[5], draft_long_side=2 * SIZE).size
    # Draft decoding keeps vectors close to those of a full decode.
    full = extractor.extract([load_image(sources[i]) for i in result.indices])
    assert (full * result.vectors).sum(axis=1).min() > 0.999


def test_extract_paths_is_independent_of_batching_and_threads(extractor, tmp_path):
    paths = []
    for i, img in enumerate(_photos()):
        paths.append(tmp_path / f"{i}.png")
        img.save(paths[-1])
    a = extractor.extract_paths(paths, batch_size=1, workers=1)
    b = extractor.extract_paths(paths, batch_size=3, workers=3)
    np.testing.assert_allclose(a.vectors, b.vectors, atol=1e-5, rtol=0)
    np.testing.assert_allclose(a.vectors, extractor.extract([load_image(p) for p in paths]), atol=1e-5)


def test_default_device_and_constructor(extractor):
    other = GlobalDescriptorExtractor(extractor.net, extractor.config)
    assert other.device.type == ("cuda" if torch.cuda.is_available() else "cpu")


def test_patches_come_from_the_same_forward_pass(extractor, tmp_path):
    photos = _photos()[:3]
    paths = []
    for i, photo in enumerate(photos):
        paths.append(tmp_path / f"{i}.png")
        photo.save(paths[-1])
    vectors, patches = extractor.extract_with_patches(photos, patch_top_n=5)
    np.testing.assert_allclose(vectors, extractor.extract(photos), atol=1e-5)
    assert [p.shape for p in patches] == [(5, extractor.dim)] * 3
    np.testing.assert_allclose(np.linalg.norm(patches[0], axis=1), 1.0, atol=1e-5)
    result = extractor.extract_paths(paths, patch_top_n=5)
    assert result.patches is not None and len(result.patches) == 3
    for ours, theirs in zip(result.patches, patches, strict=True):
        np.testing.assert_allclose(ours, theirs, atol=1e-4)
    # A photo's patches are far closer to themselves than to another photo's.
    assert (patches[0] @ patches[0].T).max(axis=1).mean() > (patches[0] @ patches[1].T).max(axis=1).mean()
    assert extractor.extract_paths(paths).patches is None
