"""How stored ``LocalFeatures`` are encoded: today's full format, or a compact one a quarter of its size.

A ``LocalFeatureFormat`` names three independent savings, each applied when an index image's features are
stored (queries are matched at full precision; they are never stored):

- ``max_keypoints``: keep only the strongest K keypoints (``extract_sift`` sorts them strongest first).
- ``descriptor_bits`` 4 or 2: each RootSIFT component is replaced by the nearest of 16 or 4 fixed levels
  and packed 2 or 4 to a byte (64 or 32 bytes per descriptor instead of 128). The levels are Lloyd-Max
  levels of the component distribution (in uint8 code units, value x 512), learnt once, without labels, on
  RootSIFT of 40 photos each of holidays_partial and wonders7 (within one code of each other; sfm_landmarks'
  lie within three codes of them), because RootSIFT's component distribution is a property of the
  descriptor, not of a collection; so they are constants and need no codebook per deployment. Decoding
  gives back uint8 codes (the levels), so matching, VLAD and everything downstream read compact features
  unchanged.
- ``geometry`` ``"uint16"``: x and y as 16-bit fractions of the image's width and height (1/65535 of the
  side: 0.06 px on a 4000 px photo), scale and angle as float16 (0.05 % relative, 0.25 degree): 8 bytes per
  keypoint instead of 16 (float32).

The default format is today's, written byte for byte as before (meta version 1), so existing stores stay
valid. Compact files say their format in ``meta`` (version 2: width, height, pixel_scale, bits, geometry
code), so decoding never needs to be told it. ``LocalFeatureFormat.key`` is appended to the store's
extractor key (``local_features_key``): a store directory holds one format only.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from typing import Literal

import numpy as np

from retrieval_core.features.sift import LocalFeatures

__all__ = [
    "COMPACT_FORMAT_VERSION",
    "DESCRIPTOR_LEVELS",
    "FULL_FORMAT",
    "FULL_FORMAT_VERSION",
    "GeometryEncoding",
    "LocalFeatureFormat",
    "as_stored",
    "decode_local_features",
    "encode_local_features",
    "is_known_meta",
]

GeometryEncoding = Literal["float32", "uint16"]
_GEOMETRY_CODES: dict[str, int] = {"float32": 0, "uint16": 1}

FULL_FORMAT_VERSION = 1
"""meta = [1, width, height, pixel_scale]; geometry (N, 4) float32; descriptors (N, 128) uint8."""
COMPACT_FORMAT_VERSION = 2
"""meta = [2, width, height, pixel_scale, descriptor_bits, geometry code]; see the module docstring."""

DESCRIPTOR_LEVELS: dict[int, np.ndarray] = {
    4: np.array([0, 4, 9, 12, 16, 19, 23, 27, 31, 36, 42, 50, 60, 74, 92, 112], np.uint8),
    2: np.array([6, 28, 55, 92], np.uint8),
}
"""Reconstruction levels (uint8 RootSIFT codes) per bit depth, ascending; 8 bits = the codes themselves."""

_UINT16_MAX = 65535
_NAME = re.compile(r"^(?P<bits>[248])bit-(?P<geometry>float32|uint16)(?:-k(?P<k>[0-9]+))?$")


@dataclass(frozen=True)
class LocalFeatureFormat:
    """Encoding of stored local features; the default is today's full format (see the module docstring).

    ``descriptor_bits``: 8 (uint8 codes as extracted), 4 or 2 (fixed Lloyd-Max levels, packed).
    ``geometry``: ``"float32"`` (x, y, scale, angle) or ``"uint16"`` (16-bit x, y; float16 scale, angle).
    ``max_keypoints``: keep the strongest K keypoints (0: all that were extracted).
    """

    descriptor_bits: int = 8
    geometry: GeometryEncoding = "float32"
    max_keypoints: int = 0

    def __post_init__(self) -> None:
        if self.descriptor_bits not in (8, 4, 2):
            raise ValueError(f"descriptor_bits must be 8, 4 or 2, got {self.descriptor_bits}")
        if self.geometry not in _GEOMETRY_CODES:
            raise ValueError(f"geometry must be one of {tuple(_GEOMETRY_CODES)}, got {self.geometry!r}")
        if self.max_keypoints < 0:
            raise ValueError(f"max_keypoints must be >= 0 (0: all), got {self.max_keypoints}")

    @property
    def is_full(self) -> bool:
        """Whether this is today's format (written as meta version 1)."""
        return self.descriptor_bits == 8 and self.geometry == "float32"

    @property
    def name(self) -> str:
        """``<bits>bit-<geometry>[-k<K>]``, e.g. ``8bit-float32`` (today) or ``2bit-uint16-k750``."""
        return f"{self.descriptor_bits}bit-{self.geometry}" + (
            f"-k{self.max_keypoints}" if self.max_keypoints else ""
        )

    @property
    def key(self) -> str:
        """Suffix of the store's extractor key: empty for the default (existing stores keep their name)."""
        return "" if self == LocalFeatureFormat() else f"-{self.name}"

    @classmethod
    def parse(cls, name: str) -> LocalFeatureFormat:
        """The format named ``name`` (``LocalFeatureFormat.name``; ``full`` = the default)."""
        if name.strip() in ("", "full"):
            return cls()
        match = _NAME.match(name.strip())
        if match is None:
            raise ValueError(
                f"local feature format must look like '8bit-float32', '4bit-uint16' or '2bit-uint16-k750' "
                f"(<8|4|2>bit-<float32|uint16>[-k<keypoints>]), got {name!r}"
            )
        geometry: GeometryEncoding = "uint16" if match["geometry"] == "uint16" else "float32"
        return cls(int(match["bits"]), geometry, int(match["k"] or 0))

    def bytes_per_keypoint(self) -> int:
        """Descriptor plus geometry bytes of one stored keypoint (file overhead not included)."""
        return 128 * self.descriptor_bits // 8 + (16 if self.geometry == "float32" else 8)


FULL_FORMAT = LocalFeatureFormat()
"""Today's format: every keypoint, uint8 descriptors, float32 geometry (~144 bytes per keypoint)."""


def as_stored(features: LocalFeatures, fmt: LocalFeatureFormat) -> LocalFeatures:
    """``features`` exactly as a store in ``fmt`` gives them back (``decode(encode(features))``)."""
    if fmt == FULL_FORMAT:
        return features
    return decode_local_features(*_arrays(encode_local_features(features, fmt)))


def encode_local_features(features: LocalFeatures, fmt: LocalFeatureFormat) -> dict[str, np.ndarray]:
    """The arrays a store writes for ``features``: ``meta``, ``geometry`` and ``descriptors``.

    Full format: geometry (N, 4) float32, descriptors (N, 128) uint8. Compact: geometry (N, 4) float32 or
    uint16, descriptors (N, 128 * bits / 8) uint8 (packed level indices; 8 bits = the codes).
    """
    if fmt.max_keypoints and len(features) > fmt.max_keypoints:
        features = _strongest(features, fmt.max_keypoints)
    n = len(features)
    nan = np.full(n, np.nan, np.float32)
    scales = nan if features.scales is None else features.scales.astype(np.float32)
    angles = nan if features.angles is None else features.angles.astype(np.float32)
    width, height = features.image_size
    if fmt.is_full:
        geometry = np.column_stack([features.keypoints, scales, angles]).astype(np.float32)
        meta = np.array([FULL_FORMAT_VERSION, width, height, features.pixel_scale], np.float64)
        return {"meta": meta, "geometry": geometry, "descriptors": features.descriptors}
    if fmt.geometry == "uint16":
        fraction = (features.keypoints.astype(np.float64) + 0.5) / np.array([width, height], np.float64)
        points = np.clip(np.rint(fraction * _UINT16_MAX), 0, _UINT16_MAX).astype(np.uint16)
        halves = np.column_stack([scales, angles]).astype(np.float16).view(np.uint16)
        geometry = np.column_stack([points, halves]).astype(np.uint16)
    else:
        geometry = np.column_stack([features.keypoints, scales, angles]).astype(np.float32)
    meta = np.array(
        [
            COMPACT_FORMAT_VERSION,
            width,
            height,
            features.pixel_scale,
            fmt.descriptor_bits,
            _GEOMETRY_CODES[fmt.geometry],
        ],
        np.float64,
    )
    return {
        "meta": meta,
        "geometry": geometry,
        "descriptors": _pack(features.descriptors, fmt.descriptor_bits),
    }


def decode_local_features(meta: np.ndarray, geometry: np.ndarray, descriptors: np.ndarray) -> LocalFeatures:
    """``LocalFeatures`` from the stored arrays of any format (``meta`` says which); ``ValueError`` if they
    are not a known format or do not fit together."""
    version = int(meta[0]) if len(meta) else -1
    if version == FULL_FORMAT_VERSION and len(meta) == 4:
        bits, code = 8, _GEOMETRY_CODES["float32"]
    elif version == COMPACT_FORMAT_VERSION and len(meta) == 6:
        bits, code = int(meta[4]), int(meta[5])
    else:
        raise ValueError(
            f"stored local features in format {version} ({len(meta)} meta fields); "
            f"known: {FULL_FORMAT_VERSION} (4 fields), {COMPACT_FORMAT_VERSION} (6 fields)"
        )
    width, height = int(meta[1]), int(meta[2])
    if code not in _GEOMETRY_CODES.values() or geometry.ndim != 2 or geometry.shape[1] != 4:
        raise ValueError(f"stored geometry code {code} with shape {geometry.shape} is not a known layout")
    if code == _GEOMETRY_CODES["uint16"]:
        if geometry.dtype != np.uint16:
            raise ValueError(f"uint16 geometry stored as {geometry.dtype}")
        fraction = geometry[:, :2].astype(np.float64) / _UINT16_MAX
        keypoints = (fraction * np.array([width, height], np.float64) - 0.5).astype(np.float32)
        halves = np.ascontiguousarray(geometry[:, 2:]).view(np.float16).astype(np.float32)
        scales, angles = halves[:, 0], halves[:, 1]
    else:
        keypoints = np.ascontiguousarray(geometry[:, :2], np.float32)
        scales, angles = geometry[:, 2].astype(np.float32), geometry[:, 3].astype(np.float32)
    return LocalFeatures(
        keypoints=keypoints,
        descriptors=_unpack(descriptors, bits),
        image_size=(width, height),
        pixel_scale=float(meta[3]),
        scales=None if np.isnan(scales).any() else scales.copy(),
        angles=None if np.isnan(angles).any() else angles.copy(),
    )


def is_known_meta(meta: np.ndarray) -> bool:
    """Whether a stored ``meta`` array is one of the known layouts (a cheap check of a file without reading
    its descriptors, e.g. by the reconciler looking for corrupt files)."""
    if meta.ndim != 1 or len(meta) == 0:
        return False
    return (int(meta[0]), len(meta)) in ((FULL_FORMAT_VERSION, 4), (COMPACT_FORMAT_VERSION, 6))


def _arrays(encoded: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    return encoded["meta"], encoded["geometry"], encoded["descriptors"]


def _strongest(features: LocalFeatures, k: int) -> LocalFeatures:
    """The first (strongest) ``k`` keypoints."""
    return dataclasses.replace(
        features,
        keypoints=features.keypoints[:k],
        descriptors=features.descriptors[:k],
        scales=None if features.scales is None else features.scales[:k],
        angles=None if features.angles is None else features.angles[:k],
    )


def _pack(codes: np.ndarray, bits: int) -> np.ndarray:
    """(N, 128) uint8 codes -> (N, 128 * bits / 8) uint8: nearest-level indices, ``8 / bits`` per byte."""
    if bits == 8:
        return np.ascontiguousarray(codes, np.uint8)
    levels = DESCRIPTOR_LEVELS[bits].astype(np.float32)
    edges = (levels[1:] + levels[:-1]) / 2
    index = np.digitize(codes.astype(np.float32), edges).astype(np.uint8)  # (N, 128) in [0, 2**bits)
    per_byte = 8 // bits
    shifts = (bits * np.arange(per_byte)).astype(np.uint8)
    grouped = index.reshape(len(codes), 128 // per_byte, per_byte)
    return np.bitwise_or.reduce(grouped << shifts, axis=2).astype(np.uint8)


def _unpack(packed: np.ndarray, bits: int) -> np.ndarray:
    """Inverse of ``_pack``: (N, 128 * bits / 8) uint8 -> (N, 128) uint8 codes (the levels)."""
    width = 128 * bits // 8
    if packed.dtype != np.uint8 or packed.ndim != 2 or packed.shape[1] != width:
        raise ValueError(
            f"{bits}-bit descriptors must be (N, {width}) uint8, got {packed.shape} {packed.dtype}"
        )
    if bits == 8:
        return packed
    per_byte = 8 // bits
    shifts = (bits * np.arange(per_byte)).astype(np.uint8)
    index = (packed[:, :, None] >> shifts) & np.uint8((1 << bits) - 1)
    return DESCRIPTOR_LEVELS[bits][index.reshape(len(packed), 128)]
