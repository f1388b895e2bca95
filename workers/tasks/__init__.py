"""Celery tasks, one module per queue: ``gpu`` for model work, ``cpu`` for the rest."""

from workers.tasks import analysis, cpu, gpu, operations

__all__ = ["analysis", "cpu", "gpu", "operations"]
