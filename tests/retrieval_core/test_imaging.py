import io
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from retrieval_core.imaging import ImageLoadError, load_image, resize_long_side


def _encode(img: Image.Image, fmt: str, **kwargs: object) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt, **kwargs)
    return buf.getvalue()


def _gradient(w: int, h: int) -> Image.Image:
    x = np.linspace(0, 255, w, dtype=np.uint8)[None, :].repeat(h, 0)
    y = np.linspace(0, 255, h, dtype=np.uint8)[:, None].repeat(w, 1)
    return Image.fromarray(np.stack([x, y, 255 - x], axis=-1))


def _png_header_only(width: int, height: int) -> bytes:
    """A PNG whose header claims ``width x height`` but holds almost no pixel data."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\x00" * 16))


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP", "BMP", "TIFF", "GIF"])
def test_supported_formats_decode_to_rgb(fmt):
    img = load_image(_encode(_gradient(40, 24), fmt))
    assert img.mode == "RGB"
    assert img.size == (40, 24)


def test_sources_bytes_path_and_file_object_agree(tmp_path):
    data = _encode(_gradient(32, 20), "PNG")
    path = tmp_path / "a.png"
    path.write_bytes(data)
    arrays = [np.asarray(load_image(s)) for s in (data, str(path), path, io.BytesIO(data))]
    for arr in arrays[1:]:
        np.testing.assert_array_equal(arr, arrays[0])
    np.testing.assert_array_equal(arrays[0], np.asarray(_gradient(32, 20)))


def test_exif_orientation_is_applied():
    img = Image.new("RGB", (40, 20), (0, 0, 255))
    img.paste((255, 0, 0), (0, 0, 8, 8))  # red mark in the stored top-left corner
    exif = Image.Exif()
    exif[0x0112] = 6  # Orientation: rotate 90° clockwise to display
    loaded = load_image(_encode(img, "JPEG", exif=exif.tobytes(), quality=95))
    assert loaded.size == (20, 40)
    r, _, b = loaded.getpixel((loaded.width - 3, 2))  # the mark is now top-right
    assert r > 200 and b < 60
    assert loaded.getpixel((2, 2))[2] > 200  # and top-left is background


def test_gif_uses_first_frame():
    frames = [Image.new("RGB", (16, 16), c) for c in ((255, 0, 0), (0, 0, 255))]
    buf = io.BytesIO()
    frames[0].save(buf, format="GIF", save_all=True, append_images=frames[1:])
    assert load_image(buf.getvalue()).getpixel((5, 5))[0] > 200


def test_transparency_is_composited_on_white():
    img = Image.new("RGBA", (8, 8), (0, 0, 0, 0))
    assert load_image(_encode(img, "PNG")).getpixel((3, 3)) == (255, 255, 255)


@pytest.mark.parametrize("source", [b"", io.BytesIO(b"")])
def test_zero_bytes(source):
    with pytest.raises(ImageLoadError, match="empty"):
        load_image(source)


def test_zero_byte_file_and_missing_file(tmp_path):
    empty = tmp_path / "empty.jpg"
    empty.touch()
    with pytest.raises(ImageLoadError, match="empty"):
        load_image(empty)
    with pytest.raises(ImageLoadError, match="not found"):
        load_image(tmp_path / "missing.jpg")


def test_not_an_image():
    with pytest.raises(ImageLoadError, match="not an image"):
        load_image(b"<html><body>definitely not a picture</body></html>" * 4)


@pytest.mark.parametrize("fmt", ["JPEG", "PNG"])
def test_truncated_image(fmt):
    noise = np.random.default_rng(0).integers(0, 256, (96, 96, 3), dtype=np.uint8)
    data = _encode(Image.fromarray(noise), fmt)
    Image.open(io.BytesIO(data[: len(data) // 2]))  # the header survives: only the full decode notices
    with pytest.raises(ImageLoadError, match="data is truncated or corrupt"):
        load_image(data[: len(data) // 2])


@pytest.mark.parametrize("cut", [0.05, 0.5, 0.9])
def test_truncated_webp_and_corrupt_png_header(cut):
    data = _encode(Image.fromarray(np.full((64, 64, 3), 7, dtype=np.uint8)), "WEBP")
    with pytest.raises(ImageLoadError):  # libwebp decodes in Image.open, so the message varies
        load_image(data[: int(len(data) * cut)])
    png = bytearray(_encode(_gradient(32, 32), "PNG"))
    png[16:24] = b"\xff" * 8  # IHDR width and height, now inconsistent with the CRC
    with pytest.raises(ImageLoadError):
        load_image(bytes(png))


@pytest.mark.parametrize("fmt", ["PPM", "TGA", "ICO", "PCX"])
def test_unsupported_format(fmt):
    with pytest.raises(ImageLoadError, match=f"Unsupported image format {fmt}"):
        load_image(_encode(_gradient(16, 16), fmt))


def test_too_many_pixels_is_refused_from_the_header():
    # The header claims 5000x5000 but the pixel data is garbage: the size check must fire before decoding.
    with pytest.raises(ImageLoadError, match="too large"):
        load_image(_png_header_only(5000, 5000), max_pixels=1_000_000)


def test_pil_decompression_bomb_error_is_wrapped():
    # 20000 x 10000 exceeds twice PIL's global MAX_IMAGE_PIXELS, so Image.open itself raises.
    with pytest.raises(ImageLoadError, match="too many pixels"):
        load_image(_png_header_only(20_000, 10_000), max_pixels=10**12)


def test_draft_decodes_large_jpeg_at_reduced_scale():
    data = _encode(_gradient(1600, 1000), "JPEG")
    drafted = load_image(data, draft_long_side=300)
    assert drafted.size == (400, 250)  # 1/4 scale: the largest that keeps the long side >= 300
    assert load_image(data, draft_long_side=1000).size == (1600, 1000)  # 1/2 would be < 1000
    assert load_image(data).size == (1600, 1000)


@pytest.mark.parametrize(
    ("size", "long_side", "expected"),
    [
        ((400, 300), 200, (200, 150)),
        ((300, 400), 200, (150, 200)),
        ((100, 50), 200, (200, 100)),
        ((1000, 3), 100, (100, 1)),
    ],
)
def test_resize_long_side(size, long_side, expected):
    assert resize_long_side(Image.new("RGB", size), long_side).size == expected


def test_resize_long_side_without_upsampling_and_antialiasing():
    small = Image.new("RGB", (100, 50))
    assert resize_long_side(small, 200, upsample=False) is small
    # A 1-px checkerboard shrunk 4x must come out flat grey (antialiased), not aliased to black/white.
    board = Image.fromarray(((np.indices((64, 64)).sum(0) % 2) * 255).astype(np.uint8)).convert("RGB")
    arr = np.asarray(resize_long_side(board, 16)).astype(int)
    assert np.abs(arr - 127).max() < 10
    with pytest.raises(ValueError):
        resize_long_side(small, 0)


def test_path_argument_types_are_accepted(tmp_path: Path):
    path = tmp_path / "x.bmp"
    _gradient(8, 6).save(path)
    assert load_image(str(path)).size == load_image(path).size == (8, 6)


@pytest.mark.parametrize("image_format", ["HEIF", "AVIF"])
def test_phone_formats_decode_upright(image_format):
    """HEIC and AVIF, written with EXIF orientation 6 (a phone held upright), decode like the JPEG does."""
    from tests.phone_photos import encode_phone_photo

    array = np.zeros((40, 80, 3), np.uint8)
    array[:, :, 2] = 255
    array[:16, :16] = (255, 0, 0)  # red mark in the stored top-left corner
    data = encode_phone_photo(array, image_format, orientation=6)
    with Image.open(io.BytesIO(data)) as header:
        assert header.format == image_format
    loaded = load_image(data)
    assert loaded.mode == "RGB" and loaded.size == (40, 80)
    r, _, b = loaded.getpixel((loaded.width - 4, 4))  # the mark is now top-right
    assert r > 200 and b < 60
    assert loaded.getpixel((4, 4))[2] > 200


def test_a_truncated_heic_is_a_clear_error():
    from tests.phone_photos import encode_phone_photo

    data = encode_phone_photo(np.full((64, 64, 3), 90, np.uint8), "HEIF")
    with pytest.raises(ImageLoadError):
        load_image(data[: len(data) // 2])
