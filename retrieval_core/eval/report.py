"""What an experiment ladder measured, as a Markdown table, JSON, and plots an engineer can read.

Plots (matplotlib, Agg backend, no display needed): per-query AP histograms (a mean hides whether a method
lifts every query a little or rescues a few), the precision-recall curve averaged over queries
(interpolated precision at fixed recall levels, within the top ``k``), and the worst queries of one
experiment with their top 5 results (green border: relevant, red: not, grey: junk).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from retrieval_core.eval.evaluation_protocol import EvalQuery
from retrieval_core.imaging import ImageLoadError, load_image

__all__ = [
    "REPEATED_ROW",
    "LadderReport",
    "LadderRow",
    "interpolated_precision",
    "plot_ap_histograms",
    "plot_precision_recall",
    "plot_worst_queries",
]

RECALL_LEVELS = np.linspace(0.0, 1.0, 21)
REPEATED_ROW = "best"
"""Id of the row that repeats another (the ladder's choice on validation); left out of the plots."""
_HIT, _MISS, _JUNK = "#2ca02c", "#d62728", "#9e9e9e"


@dataclass(frozen=True)
class LadderRow:
    """One experiment on the reported queries.

    ``weight_global`` is the fusion weight v (tuned on the validation queries), None for global-only rows;
    ``validation_map`` is mAP@k on the validation queries (what v and the best model were chosen by);
    latency is the median (and 95th percentile) over reported queries of query embedding + search +
    re-ranking (with the query's local-feature extraction). ``rankings``: the top ``k`` index relpaths per
    reported query.
    """

    id: str
    method: str
    map_at_k: float
    precision_at_10: float
    recall_at_k: float
    median_latency_ms: float
    index_bytes: int
    weight_global: float | None
    validation_map: float | None
    per_query_ap: Mapping[str, float]
    rankings: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    tuning: tuple[tuple[float, float], ...] = ()
    """``(v, validation mAP)`` for every grid value tried."""
    gap: float | None = None
    """Recognition GAP (GLDv2) on the reported queries, answers below ``recognition_threshold`` withheld;
    None when the collection has no landmark labels."""
    recognition_threshold: float | None = None
    """The "not in the collection" confidence threshold, chosen on the validation queries."""
    p95_latency_ms: float = float("nan")
    """The 95th percentile of the same per-query latencies as ``median_latency_ms``."""
    geolocation: Mapping[str, Any] | None = None
    """Query set -> the location estimator against the first result's position (share within 25 m, 100 m,
    1 km and median error; ``retrieval_core.eval.geolocation``); None when the collection has no GPS."""


@dataclass(frozen=True)
class LadderReport:
    """Rows of a ladder run plus what is needed to redo or draw it (queries, settings, image root)."""

    root: Path
    protocol: str
    top_k: int
    rows: tuple[LadderRow, ...]
    queries: tuple[EvalQuery, ...]
    settings: Mapping[str, Any] = field(default_factory=dict)
    extracted: Mapping[str, int] = field(default_factory=dict)
    """Images whose features this run had to compute, per cache key (all 0: everything came from cache)."""
    notes: tuple[str, ...] = ()

    def row(self, row_id: str) -> LadderRow:
        for row in self.rows:
            if row.id == row_id:
                return row
        raise KeyError(f"no row {row_id!r}; rows are {', '.join(r.id for r in self.rows)}")

    def to_markdown(self) -> str:
        """The ladder as a Markdown table (percentages) with the protocol line above it."""
        k = self.top_k
        lines = [
            f"Collection `{self.root.name}` — {self.protocol}",
            "",
            f"| id | method | mAP@{k} | P@10 | R@{k} | val mAP@{k} | v | GAP (threshold) | latency p50 / p95 "
            "| index size |",
            "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for r in self.rows:
            v = "-" if r.weight_global is None else f"{r.weight_global:.2f}"
            lines.append(
                f"| {r.id} | {r.method} | {_pct(r.map_at_k)} | {_pct(r.precision_at_10)} | "
                f"{_pct(r.recall_at_k)} | {_pct(r.validation_map)} | {v} | {_gap(r)} | "
                f"{_latency(r)} | {_size(r.index_bytes)} |"
            )
        return "\n".join(lines + _geolocation_table(self.rows)) + "\n"

    def to_dict(self, *, rankings: bool = False) -> dict[str, Any]:
        rows = []
        for r in self.rows:
            row = asdict(r)
            row["per_query_ap"] = dict(r.per_query_ap)
            row["rankings"] = {q: list(ids) for q, ids in r.rankings.items()} if rankings else {}
            row["tuning"] = [list(pair) for pair in r.tuning]
            rows.append(row)
        queries = [
            {"image": q.relpath, "positives": sorted(q.positives), "junk": sorted(q.junk)}
            for q in self.queries
        ]
        return {
            "root": str(self.root),
            "protocol": self.protocol,
            "top_k": self.top_k,
            "settings": dict(self.settings),
            "extracted": dict(self.extracted),
            "notes": list(self.notes),
            "rows": rows,
            "queries": queries,
        }

    def to_json(self, *, rankings: bool = False) -> str:
        """JSON of everything but the rankings (pass ``rankings=True`` to keep the top-k lists too)."""
        return json.dumps(self.to_dict(rankings=rankings), indent=2, default=str, allow_nan=True)

    def write(self, out_dir: Path, *, worst_of: str | None = None, n_worst: int = 6) -> list[Path]:
        """Write ``report.md``, ``report.json`` (with rankings) and the three plots; returns the paths.

        ``worst_of`` names the row whose worst queries are drawn (default: the last row).
        """
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        paths = [out / "report.md", out / "report.json"]
        paths[0].write_text(self.to_markdown(), encoding="utf-8")
        paths[1].write_text(self.to_json(rankings=True), encoding="utf-8")
        paths.append(plot_ap_histograms(self, out / "ap_histograms.png"))
        paths.append(plot_precision_recall(self, out / "precision_recall.png"))
        row = self.row(worst_of) if worst_of else self.rows[-1]
        paths.append(plot_worst_queries(self, row, out / f"worst_queries_{row.id}.png", n_worst))
        return paths


def _geolocation_table(rows: Sequence[LadderRow]) -> list[str]:
    """Where the photos were taken: the estimator and the first result's position, per row and query set."""
    located = [row for row in rows if row.geolocation]
    if not located:
        return []
    lines = [
        "",
        "Geolocation (estimated position vs the first result's position, 1-NN):",
        "",
        "| id | queries | ≤ 25 m | ≤ 100 m | ≤ 1 km | median error "
        "| 1-NN ≤ 25 m | 1-NN ≤ 100 m | 1-NN ≤ 1 km | 1-NN median |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in located:
        for name, result in (row.geolocation or {}).items():
            estimator, first = result["estimator"], result["first_result"]
            lines.append(
                f"| {row.id} | {name} ({estimator['queries']}) | "
                + " | ".join(_pct(v) for v in estimator["within"].values())
                + f" | {_metres(estimator['median_error_m'])} | "
                + " | ".join(_pct(v) for v in first["within"].values())
                + f" | {_metres(first['median_error_m'])} |"
            )
    return lines


def _metres(value: float) -> str:
    return "-" if math.isnan(value) else "∞" if math.isinf(value) else f"{value:.0f} m"


def _gap(row: LadderRow) -> str:
    if row.gap is None:
        return "-"
    threshold = "" if row.recognition_threshold is None else f" ({row.recognition_threshold:.2f})"
    return f"{_pct(row.gap)}{threshold}"


def interpolated_precision(
    ranking: Sequence[str],
    positives: frozenset[str],
    junk: frozenset[str] = frozenset(),
    levels: np.ndarray = RECALL_LEVELS,
) -> np.ndarray:
    """Precision interpolated at each recall level (max precision at recall >= level; 0 beyond reach).

    Junk is removed from ``ranking`` first; recall is over all of ``positives``, so a positive missing
    from the ranked top ``k`` caps the curve below 1.
    """
    relevant = np.array([item in positives for item in ranking if item not in junk], bool)
    if not positives:
        raise ValueError("a query without positives has no precision-recall curve")
    hits = np.cumsum(relevant)
    precision = hits / np.arange(1, len(relevant) + 1) if len(relevant) else np.zeros(0)
    recall = hits / len(positives)
    out = np.zeros(len(levels))
    for i, level in enumerate(levels):
        reached = precision[recall >= level - 1e-12]
        out[i] = reached.max() if reached.size else 0.0
    return out


def plot_ap_histograms(report: LadderReport, path: Path) -> Path:
    """One histogram of per-query AP@k per experiment."""
    plt = _pyplot()
    shown = _distinct_rows(report)
    n = len(shown)
    cols = min(n, 4)
    rows = math.ceil(n / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 2.6 * rows), squeeze=False, sharey=True)
    bins = np.linspace(0.0, 1.0, 11)
    for ax, row in zip(axes.ravel(), shown, strict=False):
        ax.hist(list(row.per_query_ap.values()), bins=bins, color="#4c72b0", edgecolor="white")
        ax.set_title(f"{row.id}: mAP {_pct(row.map_at_k)}", fontsize=9)
        ax.set_xlabel(f"AP@{report.top_k}", fontsize=8)
    for ax in axes.ravel()[n:]:
        ax.axis("off")
    axes[0, 0].set_ylabel("queries")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_precision_recall(report: LadderReport, path: Path) -> Path:
    """Mean interpolated precision-recall curve of every experiment, over the reported queries."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 4.5))
    for row in _distinct_rows(report):
        curves = [
            interpolated_precision(row.rankings.get(q.relpath, ()), q.positives, q.junk)
            for q in report.queries
        ]
        if curves:
            ax.plot(RECALL_LEVELS, np.mean(curves, axis=0), marker=".", label=f"{row.id} ({row.method})")
    ax.set_xlabel(f"recall (within top {report.top_k})")
    ax.set_ylabel("interpolated precision")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.02)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="lower left")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_worst_queries(report: LadderReport, row: LadderRow, path: Path, n_worst: int = 6) -> Path:
    """The ``n_worst`` lowest-AP queries of ``row``: query thumbnail, then its top 5 with hit/miss borders."""
    plt = _pyplot()
    by_query = {q.relpath: q for q in report.queries}
    worst = sorted(row.per_query_ap, key=lambda q: (row.per_query_ap[q], q))[:n_worst]
    shown = max(len(worst), 1)
    fig, axes = plt.subplots(shown, 6, figsize=(12, 2.2 * shown), squeeze=False)
    for ax in axes.ravel():
        ax.set_xticks([])
        ax.set_yticks([])
    for line, name in enumerate(worst):
        query = by_query[name]
        _thumbnail(axes[line, 0], report.root / name, "#1f77b4")
        axes[line, 0].set_title(f"AP {row.per_query_ap[name]:.2f}", fontsize=8)
        axes[line, 0].set_ylabel(_short(name), fontsize=7)
        for rank, hit in enumerate(row.rankings.get(name, ())[:5], start=1):
            colour = _JUNK if hit in query.junk else _HIT if hit in query.positives else _MISS
            _thumbnail(axes[line, rank], report.root / hit, colour)
            axes[line, rank].set_title(f"{rank}. {_short(hit)}", fontsize=7)
    fig.suptitle(f"Worst queries of {row.id}: {row.method}", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def _distinct_rows(report: LadderReport) -> list[LadderRow]:
    return [row for row in report.rows if row.id != REPEATED_ROW] or list(report.rows)


def _thumbnail(ax: Any, path: Path, colour: str) -> None:
    try:
        image = load_image(path, draft_long_side=160)
        image.thumbnail((160, 160))
        ax.imshow(np.asarray(image))
    except ImageLoadError:
        ax.text(0.5, 0.5, "unreadable", ha="center", va="center", fontsize=7)
    for spine in ax.spines.values():
        spine.set_edgecolor(colour)
        spine.set_linewidth(4)


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _short(relpath: str, n: int = 26) -> str:
    """Folder and file name (the file name alone repeats across landmarks), cut from the left."""
    name = "/".join(relpath.split("/")[-2:])
    return name if len(name) <= n else "…" + name[-(n - 1) :]


def _pct(value: float | None) -> str:
    return "-" if value is None or math.isnan(value) else f"{100 * value:.2f}"


def _latency(row: LadderRow) -> str:
    """``p50 / p95 ms``, or ``p50 ms`` for a row without a 95th percentile (reports stored before it)."""
    if math.isnan(row.p95_latency_ms):
        return f"{row.median_latency_ms:.0f} ms"
    return f"{row.median_latency_ms:.0f} / {row.p95_latency_ms:.0f} ms"


def _size(n_bytes: int) -> str:
    for unit, scale in (("GB", 1 << 30), ("MB", 1 << 20), ("kB", 1 << 10)):
        if n_bytes >= scale:
            return f"{n_bytes / scale:.1f} {unit}"
    return f"{n_bytes} B"
