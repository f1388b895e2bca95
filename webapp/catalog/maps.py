"""A small offline map: photo positions drawn as inline SVG (equirectangular, around the points), with a
degree graticule and no tiles, so nothing is loaded from the internet. The search page's script draws the
same map for its result grid (``search.js``: ``positionMap``)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from html import escape

__all__ = ["MapPoint", "position_map_svg"]


@dataclass(frozen=True)
class MapPoint:
    latitude: float
    longitude: float
    label: str
    kind: str = "image"  # "image", "result" or "query" (drawn larger, in another colour)


def position_map_svg(points: Sequence[MapPoint], *, width: int = 320, height: int = 200) -> str:
    """SVG markup (escaped labels) of the points; "" when there is none."""
    if not points:
        return ""
    lats = [p.latitude for p in points]
    lons = [p.longitude for p in points]
    span = max(max(lats) - min(lats), max(lons) - min(lons), 0.01) * 1.3
    mid_lat, mid_lon = (max(lats) + min(lats)) / 2, (max(lons) + min(lons)) / 2
    scale = min(width, height) / span

    def xy(lat: float, lon: float) -> tuple[float, float]:
        return (width / 2 + (lon - mid_lon) * scale, height / 2 - (lat - mid_lat) * scale)

    step = 10 ** math.floor(math.log10(span))  # graticule every 10^n degrees
    lines = []
    first = math.floor((mid_lon - span) / step) * step
    for i in range(int(2 * span / step) + 2):
        x, _ = xy(mid_lat, first + i * step)
        lines.append(f'<line x1="{x:.1f}" y1="0" x2="{x:.1f}" y2="{height}"/>')
    first = math.floor((mid_lat - span) / step) * step
    for i in range(int(2 * span / step) + 2):
        _, y = xy(first + i * step, mid_lon)
        lines.append(f'<line x1="0" y1="{y:.1f}" x2="{width}" y2="{y:.1f}"/>')
    marks = []
    for p in sorted(points, key=lambda p: p.kind == "query"):
        x, y = xy(p.latitude, p.longitude)
        radius, colour = (7, "#d62728") if p.kind == "query" else (5, "#1f77b4")
        title = escape(f"{p.label} ({p.latitude:.5f}, {p.longitude:.5f})")
        marks.append(
            f'<circle class="map-{escape(p.kind)}" cx="{x:.1f}" cy="{y:.1f}" r="{radius}" fill="{colour}" '
            f'stroke="white" stroke-width="1.5"><title>{title}</title></circle>'
        )
    return (
        f'<svg class="position-map" xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img" aria-label="where the photos were taken">'
        f'<rect width="{width}" height="{height}" fill="#eef3f7"/>'
        f'<g stroke="#c9d6e0" stroke-width="0.5">{"".join(lines)}</g>{"".join(marks)}'
        f'<text x="4" y="{height - 4}" font-size="9" fill="#667">grid {step:g}°</text></svg>'
    )
