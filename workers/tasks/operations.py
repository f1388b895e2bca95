"""Upkeep tasks (``cpu`` queue), sent by Celery beat."""

from __future__ import annotations

from celery import shared_task

from webapp import task_names
from webapp.operations import services


@shared_task(name=task_names.RECONCILE, acks_late=True)
def reconcile() -> dict[str, int | bool]:
    """Re-send lost work and bring Milvus in step with the catalogue (one run at a time; see the service)."""
    outcome = services.reconcile()
    if outcome.run is None:
        return {"skipped": True}
    return {"skipped": False, "drift": outcome.run.drift}
