"""Reads of the reconciler's findings."""

from __future__ import annotations

from webapp.operations.models import ReconcileRun


def latest_drift() -> ReconcileRun | None:
    """The last finished reconcile run (what the collection page shows), or None before the first."""
    return ReconcileRun.objects.filter(finished_at__isnull=False).first()
