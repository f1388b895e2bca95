"""Decoding untrusted image uploads into RGB PIL images, and resizing them for the networks.

Every failure of `load_image` surfaces as `ImageLoadError` with a message fit to show to the user, so
callers (web views, batch indexing) need one ``except`` and never leak decoder internals.
"""

from __future__ import annotations

import io
import math
import os
from typing import BinaryIO

from PIL import Image, ImageOps, UnidentifiedImageError, features
from pillow_heif import register_heif_opener

__all__ = ["SUPPORTED_FORMATS", "ImageLoadError", "load_image", "resize_long_side"]

# Phone photos: HEIF/HEIC (iPhones' default) through libheif. Registered on import, so every PIL
# `Image.open` of the process (EXIF reading, thumbnails) reads them. libheif applies the orientation while
# decoding and reports the EXIF orientation as 1, keeping the original in ``info["original_orientation"]``.
register_heif_opener()
# AVIF is Pillow's own (its wheels ship libavif).
_AVIF = frozenset({"AVIF"}) if features.check("avif") else frozenset()

# PIL format names; GIF and multi-page TIFF are read from their first frame.
SUPPORTED_FORMATS: frozenset[str] = frozenset({"JPEG", "PNG", "WEBP", "BMP", "TIFF", "GIF", "HEIF"}) | _AVIF

ImageSource = bytes | str | os.PathLike[str] | BinaryIO


class ImageLoadError(ValueError):
    """The input could not be turned into an image; ``str(err)`` is a user-facing message."""


def _read_bytes(source: ImageSource) -> bytes:
    if isinstance(source, bytes | bytearray | memoryview):
        return bytes(source)
    if isinstance(source, str | os.PathLike):
        try:
            with open(source, "rb") as f:
                return f.read()
        except FileNotFoundError:
            raise ImageLoadError(f"File not found: {os.fspath(source)}") from None
        except OSError as e:
            raise ImageLoadError(f"Could not read file {os.fspath(source)}: {e.strerror or e}") from None
    try:
        data = source.read()
    except (OSError, ValueError) as e:
        raise ImageLoadError(f"Could not read the uploaded file: {e}") from None
    if not isinstance(data, bytes | bytearray):
        raise ImageLoadError("The upload was read as text, not as binary data.")
    return bytes(data)


def _draft_size(size: tuple[int, int], long_side: int) -> tuple[int, int]:
    """(w, h) with the image's aspect and a long side of ``long_side``, rounded up.

    Passing the aspect-matched size (not a square) lets JPEG draft pick the largest reduction whose long
    side still reaches ``long_side``.
    """
    w, h = size
    scale = long_side / max(w, h)
    return max(1, math.ceil(w * scale)), max(1, math.ceil(h * scale))


def _to_rgb(img: Image.Image) -> Image.Image:
    """RGB, with transparent areas composited on white rather than on whatever colour they hide."""
    if img.mode == "RGB":
        return img
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        canvas = Image.new("RGB", rgba.size, (255, 255, 255))
        canvas.paste(rgba, mask=rgba.getchannel("A"))
        return canvas
    return img.convert("RGB")


def load_image(
    source: ImageSource,
    *,
    max_pixels: int = 64_000_000,
    draft_long_side: int | None = None,
) -> Image.Image:
    """Decode ``source`` fully into an RGB image with its EXIF orientation applied.

    Args:
        source: encoded bytes, a filesystem path, or a binary file object (read to its end).
        max_pixels: refuse images with more pixels than this, judged from the header before any pixel
            is decoded (decompression bombs). PIL's own global limit (``Image.MAX_IMAGE_PIXELS``) still
            applies on top and is reported the same way.
        draft_long_side: when set and the file is a JPEG much larger than needed, let libjpeg decode at
            1/2, 1/4 or 1/8 scale (DCT scaling: several times faster, with less memory), keeping the long
            side at least this many pixels. Other formats are decoded at full size.

    Raises:
        ImageLoadError: empty input, not an image, unsupported format, too many pixels, truncated or
            corrupt data. Nothing else escapes.
    """
    data = _read_bytes(source)
    if not data:
        raise ImageLoadError("The file is empty (0 bytes).")
    try:
        img = Image.open(io.BytesIO(data))
    except UnidentifiedImageError:
        raise ImageLoadError("The file is not an image, or not one in a format we can read.") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ImageLoadError("The image has too many pixels to be processed safely.") from None
    except Exception as e:  # a header the parser chokes on (SyntaxError, struct.error, ...)
        raise ImageLoadError(f"The image header is truncated or corrupt ({e or type(e).__name__}).") from None

    if img.format not in SUPPORTED_FORMATS:
        allowed = ", ".join(sorted(SUPPORTED_FORMATS))
        raise ImageLoadError(f"Unsupported image format {img.format}; use one of {allowed}.")
    w, h = img.size
    if w <= 0 or h <= 0:
        raise ImageLoadError("The image has no pixels.")
    if w * h > max_pixels:
        raise ImageLoadError(
            f"The image is too large ({w}x{h} = {w * h / 1e6:.1f} MP; the limit is "
            f"{max_pixels / 1e6:.1f} MP)."
        )
    try:
        if draft_long_side is not None and img.format == "JPEG" and max(w, h) >= 2 * draft_long_side:
            img.draft("RGB", _draft_size((w, h), draft_long_side))
        img.load()  # force the full decode now so truncation is caught here, not later
        ImageOps.exif_transpose(img, in_place=True)
        return _to_rgb(img)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ImageLoadError("The image has too many pixels to be processed safely.") from None
    except MemoryError:
        raise ImageLoadError("The image is too large to decode.") from None
    except Exception as e:  # OSError "image file is truncated", decoder errors, malformed EXIF
        raise ImageLoadError(f"The image data is truncated or corrupt ({e or type(e).__name__}).") from None


def resize_long_side(img: Image.Image, long_side: int, *, upsample: bool = True) -> Image.Image:
    """Scale ``img`` so its longer side is ``long_side`` pixels, keeping the aspect ratio.

    Bicubic with antialiasing (PIL widens the filter support when shrinking). The output never exceeds
    ``long_side``; smaller images are enlarged to it unless ``upsample`` is False, in which case they are
    returned unchanged. The short side is rounded to the nearest pixel (at least 1).
    """
    if long_side <= 0:
        raise ValueError(f"long_side must be positive, got {long_side}")
    w, h = img.size
    if max(w, h) == long_side or (max(w, h) < long_side and not upsample):
        return img
    scale = long_side / max(w, h)
    size = (long_side, max(1, round(h * scale))) if w >= h else (max(1, round(w * scale)), long_side)
    return img.resize(size, Image.Resampling.BICUBIC)
