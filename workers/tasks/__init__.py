"""Celery tasks, one module per queue: ``gpu`` for model work, ``cpu`` for the rest."""

from workers.tasks import analysis, cpu, gpu, mining, operations

__all__ = ["analysis", "cpu", "gpu", "mining", "operations"]
