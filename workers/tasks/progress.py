"""Progress reporting from inside a task, readable through the result backend."""

from __future__ import annotations

from collections.abc import Callable

from celery import Task


def reporter(task: Task, stage: str) -> Callable[[int, int], None]:
    """A ``progress(done, total)`` callback that records state PROGRESS with the counts."""

    def report(done: int, total: int) -> None:
        if task.request.id is not None:  # also callable outside a worker (apply())
            task.update_state(state="PROGRESS", meta={"stage": stage, "done": done, "total": total})

    return report
