"""Small inline SVG charts for the dashboard: server-side, no JavaScript, nothing fetched from elsewhere."""

from __future__ import annotations

from collections.abc import Sequence

from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString, mark_safe

from webapp.curation.selectors import DatasetOverview

_BAR = "#2f6fed"
_TEXT = "#1d2330"
_MUTED = "#5b6578"


def bar_chart(
    rows: Sequence[tuple[str, float]], *, total: float | None = None, width: int = 560
) -> SafeString:
    """Horizontal bars, one per ``(label, value)``; with ``total`` each value also shows as a share."""
    if not rows:
        return _empty()
    label_w, row_h = 190, 22
    bar_w = width - label_w - 110
    peak = max(value for _, value in rows) or 1
    height = row_h * len(rows) + 4
    bars = format_html_join(
        "",
        '<g transform="translate(0,{})"><title>{}: {}</title>'
        '<text x="{}" y="15" text-anchor="end" fill="{}">{}</text>'
        '<rect x="{}" y="4" width="{}" height="14" rx="2" fill="{}"></rect>'
        '<text x="{}" y="15" fill="{}">{}</text></g>',
        (
            (
                i * row_h,
                label,
                _number(value),
                label_w - 8,
                _TEXT,
                _clip(label, 28),
                label_w,
                _f(max(1.0, bar_w * value / peak) if value else 0),
                _BAR,
                _f(label_w + (bar_w * value / peak if value else 0) + 6),
                _MUTED,
                _value_text(value, total),
            )
            for i, (label, value) in enumerate(rows)
        ),
    )
    return _svg(width, height, bars, "bar chart")


def column_chart(rows: Sequence[tuple[str, float]], *, width: int = 560, height: int = 180) -> SafeString:
    """Vertical bars in the given order (years, months, hours), labels under them."""
    if not rows or not any(value for _, value in rows):
        return _empty()
    top, bottom = 16, 22
    plot_h = height - top - bottom
    step = width / len(rows)
    peak = max(value for _, value in rows) or 1
    every = max(1, round(len(rows) / 16))  # keep the axis labels readable
    columns = format_html_join(
        "",
        '<g><title>{}: {}</title><rect x="{}" y="{}" width="{}" height="{}" fill="{}"></rect>'
        '<text x="{}" y="{}" text-anchor="middle" fill="{}" font-size="11">{}</text></g>',
        (
            (
                label,
                _number(value),
                _f(i * step + 1),
                _f(top + plot_h * (1 - value / peak)),
                _f(max(1.0, step - 2)),
                _f(plot_h * value / peak),
                _BAR,
                _f(i * step + step / 2),
                height - 6,
                _MUTED,
                label if i % every == 0 else "",
            )
            for i, (label, value) in enumerate(rows)
        ),
    )
    peak_label = format_html(
        '<text x="2" y="11" fill="{}" font-size="11">max {}</text>', _MUTED, _number(peak)
    )
    return _svg(width, height, columns + peak_label, "column chart")


def scatter_chart(
    points: Sequence[tuple[float, float]], *, width: int = 560, height: int = 320
) -> SafeString:
    """``(longitude, latitude)`` points in an equirectangular frame fitted to the data (with a margin)."""
    if not points:
        return _empty()
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    span = max(max(xs) - min(xs), max(ys) - min(ys), 0.01)
    pad = span * 0.08
    x0, x1, y0, y1 = min(xs) - pad, max(xs) + pad, min(ys) - pad, max(ys) + pad
    scale = min(width / (x1 - x0), height / (y1 - y0))
    dots = format_html_join(
        "",
        '<circle cx="{}" cy="{}" r="3" fill="{}" fill-opacity="0.6"><title>{}, {}</title></circle>',
        (
            (_f(scale * (x - x0)), _f(height - scale * (y - y0)), _BAR, f"{y:.5f}", f"{x:.5f}")
            for x, y in points
        ),
    )
    corners = format_html(
        '<text x="4" y="{}" fill="{}" font-size="11">{}°, {}°</text>'
        '<text x="{}" y="12" text-anchor="end" fill="{}" font-size="11">{}°, {}°</text>',
        height - 4,
        _MUTED,
        f"{y0:.3f}",
        f"{x0:.3f}",
        width - 4,
        _MUTED,
        f"{y1:.3f}",
        f"{x1:.3f}",
    )
    frame = format_html('<rect width="{}" height="{}" fill="#eef1f6"></rect>', width, height)
    return _svg(width, height, frame + dots + corners, "GPS positions, longitude across, latitude up")


def _svg(width: int, height: int, body: str, label: str) -> SafeString:
    return format_html(
        '<svg xmlns="http://www.w3.org/2000/svg" class="chart" role="img" aria-label="{}" '
        'width="{}" height="{}" viewBox="0 0 {} {}" font-family="system-ui, sans-serif" font-size="12">'
        "{}</svg>",
        label,
        width,
        height,
        width,
        height,
        body,
    )


def _empty() -> SafeString:
    return mark_safe('<p class="muted">No data yet.</p>')


def _f(value: float) -> str:
    return f"{value:.1f}"


def _clip(text: str, n: int) -> str:
    return text if len(text) <= n else text[: n - 1] + "…"


def _number(value: float) -> str:
    return f"{value:,.0f}" if float(value).is_integer() else f"{value:,.2f}"


def _value_text(value: float, total: float | None) -> str:
    if total:
        return f"{_number(value)} ({100 * value / total:.1f} %)"
    return _number(value)


def overview_charts(overview: DatasetOverview) -> dict[str, SafeString]:
    """The dashboard's charts, by name."""
    return {
        "top_landmarks": bar_chart(overview.top_landmarks),
        "landmark_sizes": bar_chart(overview.landmark_sizes, total=overview.landmarks),
        "flags": bar_chart(overview.flags, total=overview.images),
        "years": column_chart(overview.years),
        "months": column_chart(overview.months),
        "hours": column_chart(overview.hours),
        "gps": scatter_chart(overview.gps_points),
        "cameras": bar_chart(overview.cameras, total=overview.images),
    }
