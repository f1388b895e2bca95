"""A small offline map: photo positions drawn as inline SVG with a scale bar and a grid in metres, no tiles,
so nothing is loaded from the internet. Positions are projected around their centre (metres east and
north), so distances on the map are true in every direction. An estimated position is drawn as a circle of
its radius. The search page's script draws the same map for its results (``search.js``: ``positionMap``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from html import escape

__all__ = ["MapArea", "MapPoint", "nice_scale_m", "position_map_svg"]

METRES_PER_DEGREE = 111_195.0
MIN_SPAN_M = 200.0


@dataclass(frozen=True)
class MapPoint:
    latitude: float
    longitude: float
    label: str
    kind: str = "image"  # "image", "result" or "query" (drawn larger, in another colour)


@dataclass(frozen=True)
class MapArea:
    """A position with its uncertainty (the search's estimated location), drawn as a circle."""

    latitude: float
    longitude: float
    radius_m: float
    label: str


def nice_scale_m(span_m: float) -> float:
    """The longest 1, 2 or 5 x 10^n metres that fits in a quarter of ``span_m`` (the scale bar)."""
    target = max(span_m / 4, 1.0)
    power = 10 ** math.floor(math.log10(target))
    return max(step * power for step in (1, 2, 5) if step * power <= target)


def position_map_svg(
    points: Sequence[MapPoint], *, area: MapArea | None = None, width: int = 320, height: int = 200
) -> str:
    """SVG markup (escaped labels) of the points and the area; "" when there is nothing to draw."""
    if not points and area is None:
        return ""
    lats = [p.latitude for p in points] + ([area.latitude] if area else [])
    lons = [p.longitude for p in points] + ([area.longitude] if area else [])
    mid_lat, mid_lon = (max(lats) + min(lats)) / 2, (max(lons) + min(lons)) / 2
    east = METRES_PER_DEGREE * math.cos(math.radians(mid_lat))

    def metres(lat: float, lon: float) -> tuple[float, float]:
        return (lon - mid_lon) * east, (lat - mid_lat) * METRES_PER_DEGREE

    projected = [metres(lat, lon) for lat, lon in zip(lats, lons, strict=True)]
    reach = max([abs(c) for xy in projected for c in xy] + [area.radius_m if area else 0.0])
    span = max(2 * reach * 1.3, MIN_SPAN_M)  # metres across the shorter side
    scale = min(width, height) / span  # pixels per metre

    def xy(lat: float, lon: float) -> tuple[float, float]:
        x, y = metres(lat, lon)
        return width / 2 + x * scale, height / 2 - y * scale

    bar = nice_scale_m(span)
    lines = []
    for i in range(-int(width / (bar * scale)) - 1, int(width / (bar * scale)) + 2):
        x = width / 2 + i * bar * scale
        lines.append(f'<line x1="{x:.1f}" y1="0" x2="{x:.1f}" y2="{height}"/>')
    for i in range(-int(height / (bar * scale)) - 1, int(height / (bar * scale)) + 2):
        y = height / 2 + i * bar * scale
        lines.append(f'<line x1="0" y1="{y:.1f}" x2="{width}" y2="{y:.1f}"/>')
    marks = []
    if area is not None:
        x, y = xy(area.latitude, area.longitude)
        title = escape(f"{area.label}: ({area.latitude:.5f}, {area.longitude:.5f}) ± {area.radius_m:.0f} m")
        marks.append(
            f'<circle class="map-location" cx="{x:.1f}" cy="{y:.1f}" r="{max(area.radius_m * scale, 3):.1f}" '
            f'fill="#ff7f0e" fill-opacity="0.25" stroke="#ff7f0e" stroke-width="2">'
            f"<title>{title}</title></circle>"
        )
    for p in sorted(points, key=lambda p: p.kind == "query"):
        x, y = xy(p.latitude, p.longitude)
        radius, colour = (7, "#d62728") if p.kind == "query" else (5, "#1f77b4")
        title = escape(f"{p.label} ({p.latitude:.5f}, {p.longitude:.5f})")
        marks.append(
            f'<circle class="map-{escape(p.kind)}" cx="{x:.1f}" cy="{y:.1f}" r="{radius}" fill="{colour}" '
            f'stroke="white" stroke-width="1.5"><title>{title}</title></circle>'
        )
    bar_px = bar * scale
    scale_bar = (
        f'<g class="map-scale"><line x1="8" y1="{height - 8}" x2="{8 + bar_px:.1f}" y2="{height - 8}" '
        f'stroke="#333" stroke-width="2"/><text x="8" y="{height - 12}" font-size="10" fill="#333">'
        f"{_distance_label(bar)}</text></g>"
    )
    return (
        f'<svg class="position-map" xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img" aria-label="where the photos were taken">'
        f'<rect width="{width}" height="{height}" fill="#eef3f7"/>'
        f'<g stroke="#c9d6e0" stroke-width="0.5">{"".join(lines)}</g>{"".join(marks)}{scale_bar}</svg>'
    )


def _distance_label(metres: float) -> str:
    return f"{metres / 1000:g} km" if metres >= 1000 else f"{metres:g} m"
