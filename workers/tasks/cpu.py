"""Tasks that need no model: they go to the ``cpu`` queue."""

from __future__ import annotations

from celery import shared_task


@shared_task
def ping() -> str:
    """Health check used by tests and deployment probes."""
    return "pong"
