"""Where a training run keeps its files and how it ends: shared by the mining stage and the training that
follows it, so that neither module imports the other."""

from __future__ import annotations

from pathlib import Path

from django.conf import settings
from django.utils import timezone

from webapp.training.models import TrainingRun


def run_dir(run: TrainingRun) -> Path:
    """Checkpoints of this run; the creation time keeps a reused id from resuming someone else's run."""
    return Path(settings.VAR_DIR) / "training" / f"{run.pk}-{run.created_at:%Y%m%dT%H%M%S%f}"


def finish_run(run: TrainingRun, status: str, **fields: object) -> None:
    """End a run with ``status`` (and e.g. ``error``) unless it has already ended."""
    TrainingRun.objects.filter(pk=run.pk, finished_at__isnull=True).update(
        status=status, finished_at=timezone.now(), **fields
    )
