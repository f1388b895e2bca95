"""Sending tasks after the transaction that created their rows commits (so workers always find them).

A broker outage at that moment is logged, not raised: the rows are saved and stay ``pending``, and
``manage.py requeue_pending`` (or re-running an import) sends them again. A web request never fails after
its data was stored.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

from celery import Task
from django.db import transaction
from kombu.exceptions import OperationalError

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class SendTask:
    """An on-commit callback that sends ``task`` with ``args``."""

    task: Task
    args: tuple[object, ...]

    def __call__(self) -> None:
        try:
            self.task.delay(*self.args)
        except (OperationalError, ConnectionError) as error:
            logger.error("could not queue %s%r: %s (re-queue later)", self.task.name, self.args, error)


def send_on_commit(task: Task, *args: object) -> None:
    transaction.on_commit(SendTask(task, args))


def send_batches_on_commit(task: Task, items: Sequence[object], batch_size: int) -> None:
    """One task per ``batch_size`` items (e.g. image ids), each sent once the transaction commits."""
    for start in range(0, len(items), batch_size):
        send_on_commit(task, list(items[start : start + batch_size]))
