"""Reads for the evaluation pages: runs, their plots, and a side-by-side comparison."""

from __future__ import annotations

from django.core.files.storage import default_storage
from django.db.models import QuerySet

from webapp.evaluation.models import EvaluationRun
from webapp.evaluation.services import report_files


def recent_runs(limit: int = 50) -> QuerySet[EvaluationRun]:
    return EvaluationRun.objects.all()[:limit]


def plot_urls(run: EvaluationRun) -> list[str]:
    return [default_storage.url(name) for name in report_files(run) if name.endswith(".png")]


def comparison(runs: list[EvaluationRun]) -> tuple[list[str], list[list[object]]]:
    """Row ids (E1, E5, ...) and, per row, the mAP@100 of each run (None where a run lacks the row)."""
    row_ids: list[str] = []
    per_run: list[dict[str, float]] = []
    for run in runs:
        rows = (run.report or {}).get("rows", [])
        per_run.append({row["id"]: row["map_at_k"] for row in rows})
        row_ids += [row["id"] for row in rows if row["id"] not in row_ids]
    table: list[list[object]] = [[row_id, *[values.get(row_id) for values in per_run]] for row_id in row_ids]
    return row_ids, table
