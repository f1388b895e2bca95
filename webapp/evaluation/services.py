"""Starting and running evaluations; the run records progress so pages can show it live."""

from __future__ import annotations

import hashlib
import json
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from django.conf import settings
from django.utils import timezone

from retrieval_core.eval.ladder import run_ladder
from retrieval_core.eval.options import LadderOptions
from retrieval_core.eval.report import LadderReport
from webapp import task_names
from webapp.accounts.selectors import AnyUser
from webapp.dispatch import send_on_commit
from webapp.evaluation.models import EvaluationRun
from webapp.media import list_media, replace_media

_PROGRESS_INTERVAL_S = 1.0


def create_run(root: Path, options: LadderOptions, *, user: AnyUser | None = None) -> EvaluationRun:
    if not Path(root).is_dir():
        raise ValueError(f"{root} is not a folder")
    return EvaluationRun.objects.create(
        root=str(Path(root).resolve()),
        options=options.to_dict(),
        created_by=user if user is not None and user.is_authenticated else None,
    )


def start_evaluation(root: Path, options: LadderOptions, *, user: AnyUser | None = None) -> EvaluationRun:
    """Record a run and queue it on the gpu workers once the transaction commits."""
    run = create_run(root, options, user=user)
    send_on_commit(task_names.EVALUATE_COLLECTION, run.pk)
    return run


def report_files(run: EvaluationRun) -> list[str]:
    """Media names of the run's report files and plots (none before it has finished)."""
    return list_media(run.output_dir_name)


def publish_report(run: EvaluationRun, report: LadderReport) -> None:
    """Write the report and its plots into the media storage (MEDIA_ROOT or the bucket) under the run's
    folder, where the web server that shows them reads them; a re-run replaces them."""
    with tempfile.TemporaryDirectory(prefix="evaluation-") as folder:
        for path in report.write(Path(folder)):
            replace_media(f"{run.output_dir_name}/{path.name}", path.read_bytes())


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
        publish_report(run, report)
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
