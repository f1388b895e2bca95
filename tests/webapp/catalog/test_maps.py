"""The offline map draws true distances: its scale bar and the estimated location's circle agree with the
pixel distance between two photos a known distance apart."""

from __future__ import annotations

import math
import re

import pytest

from webapp.catalog.maps import MapArea, MapPoint, nice_scale_m, position_map_svg

NORTH_100_M = 100 / 111_195


def _circles(svg: str) -> dict[str, list[tuple[float, float, float]]]:
    found: dict[str, list[tuple[float, float, float]]] = {}
    for kind, x, y, r in re.findall(
        r'<circle class="map-(\w+)" cx="([\d.-]+)" cy="([\d.-]+)" r="([\d.]+)"', svg
    ):
        found.setdefault(kind, []).append((float(x), float(y), float(r)))
    return found


def test_scale_bar_and_location_circle_are_in_true_metres() -> None:
    points = [MapPoint(45.0, 7.0, "a", "result"), MapPoint(45.0 + NORTH_100_M, 7.0, "b", "result")]
    svg = position_map_svg(points, area=MapArea(45.0, 7.0, 40.0, "estimated"))
    circles = _circles(svg)
    (xa, ya, _), (xb, yb, _) = circles["result"]
    pixels_per_metre = math.hypot(xb - xa, yb - ya) / 100
    assert circles["location"][0][2] == pytest.approx(40 * pixels_per_metre, rel=0.01)
    bar = re.search(
        r'<g class="map-scale"><line x1="([\d.]+)" y1="[\d.]+" x2="([\d.]+)".*?>([\d.]+ k?m)</text>', svg
    )
    assert bar is not None
    length_m = float(bar.group(3).split()[0]) * (1000 if bar.group(3).endswith("km") else 1)
    assert float(bar.group(2)) - float(bar.group(1)) == pytest.approx(length_m * pixels_per_metre, rel=0.01)
    # East-west distances are true too: 100 m east is as far on the map as 100 m north.
    east = position_map_svg([points[0], MapPoint(45.0, 7.0 + NORTH_100_M / math.cos(math.radians(45)), "c")])
    (x0, _, _), (x1, _, _) = _circles(east)["result"][0], _circles(east)["image"][0]
    assert abs(x1 - x0) == pytest.approx(math.hypot(xb - xa, yb - ya), rel=0.02)


def test_nice_scale_and_nothing_to_draw() -> None:
    assert [nice_scale_m(span) for span in (200, 1000, 4100, 90_000)] == [50, 200, 1000, 20_000]
    assert position_map_svg([]) == ""
    assert "<title>&lt;b&gt;" in position_map_svg([MapPoint(1.0, 2.0, "<b>")])
