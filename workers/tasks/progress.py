"""Progress reporting from inside a task, readable through the result backend."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from celery import Task

logger = logging.getLogger(__name__)


def reporter(task: Task[Any, Any], stage: str) -> Callable[[int, int], None]:
    """A ``progress(done, total)`` callback that records state PROGRESS with the counts.

    Progress is for people watching: a result backend that cannot be reached (Redis restarting) is logged and
    the work goes on. Raising here once failed a feature batch half-way, after some files were stored and
    before they were recorded (tests/faults)."""

    def report(done: int, total: int) -> None:
        if task.request.id is None:  # also callable outside a worker (apply())
            return
        try:
            task.update_state(state="PROGRESS", meta={"stage": stage, "done": done, "total": total})
        except Exception as error:  # redis' and kombu's connection errors share no base class but Exception
            logger.warning("progress of %s not recorded (%s); the task goes on", task.name, error)

    return report
