"""Starting and running evaluations; the run records progress so pages can show it live."""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from pathlib import Path

from django.conf import settings
from django.utils import timezone

from retrieval_core.eval.ladder import run_ladder
from retrieval_core.eval.options import LadderOptions
from webapp.evaluation.models import EvaluationRun
from workers import task_names
from workers.dispatch import send_on_commit

_PROGRESS_INTERVAL_S = 1.0


def create_run(root: Path, options: LadderOptions, *, user: object | None = None) -> EvaluationRun:
    if not Path(root).is_dir():
        raise ValueError(f"{root} is not a folder")
    return EvaluationRun.objects.create(
        root=str(Path(root).resolve()),
        options=options.to_dict(),
        created_by=user,  # type: ignore[misc]
    )


def start_evaluation(root: Path, options: LadderOptions, *, user: object | None = None) -> EvaluationRun:
    """Record a run and queue it on the gpu workers once the transaction commits."""
    run = create_run(root, options, user=user)
    send_on_commit(task_names.EVALUATE_COLLECTION, run.pk)
    return run


def output_dir(run: EvaluationRun) -> Path:
    return Path(settings.MEDIA_ROOT) / run.output_dir_name


def cache_dir(root: str) -> Path:
    """One feature cache per collection, shared by runs, so a new fusion grid re-extracts nothing."""
    return Path(settings.FEATURES_ROOT) / "eval-cache" / hashlib.sha256(root.encode()).hexdigest()[:16]


def execute_run(
    run_id: int, *, progress_hook: Callable[[str, int, int], None] | None = None
) -> EvaluationRun:
    """Run the ladder for a stored run (idempotent: a finished run is returned as is)."""
    run = EvaluationRun.objects.get(pk=run_id)
    if run.status == EvaluationRun.Status.DONE:
        return run
    options = LadderOptions.from_dict(run.options)
    EvaluationRun.objects.filter(pk=run.pk).update(status=EvaluationRun.Status.RUNNING, error="")
    last = {"at": 0.0}

    def progress(stage: str, done: int, total: int) -> None:
        now = time.monotonic()
        if now - last["at"] >= _PROGRESS_INTERVAL_S or done == total:
            last["at"] = now
            EvaluationRun.objects.filter(pk=run.pk).update(stage=stage[:200], done=done, total=total)
        if progress_hook is not None:
            progress_hook(stage, done, total)

    try:
        report = run_ladder(
            Path(run.root), cache_dir=cache_dir(run.root), progress=progress, **options.ladder_kwargs()
        )
        report.write(output_dir(run))
    except Exception as error:
        EvaluationRun.objects.filter(pk=run.pk).update(
            status=EvaluationRun.Status.FAILED,
            error=f"{type(error).__name__}: {error}",
            finished_at=timezone.now(),
        )
        raise
    EvaluationRun.objects.filter(pk=run.pk).update(
        status=EvaluationRun.Status.DONE,
        report=json.loads(report.to_json(), parse_constant=lambda _: None),  # NaN is not JSON (PostgreSQL)
        markdown=report.to_markdown(),
        finished_at=timezone.now(),
    )
    run.refresh_from_db()
    return run
