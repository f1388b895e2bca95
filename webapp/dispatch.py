"""Sending tasks by name once the transaction that wrote their rows commits (so workers always find them).

This layer sits below every app and imports none of them, nor any task module: services hand work to
`send_on_commit`, and a low app announces what happened (`announce`, e.g. `Event.IMAGES_REGISTERED`)
without knowing which apps react to it. Task modules import the services they wrap, so the dependency
graph points one way: `workers` → services → this module. Tasks are sent through Celery's current app,
which `workers/celery.py` creates (Django loads it as the installed app ``workers``) and makes the default.

A broker outage at that moment is logged, not raised: the rows are saved and stay ``pending``, and
``manage.py requeue_pending`` (or re-running an import) sends them again. A web request never fails after
its data was stored. Each `SendTask` records whether its send succeeded, and `recording` collects them, so
a page can tell its user truthfully whether the follow-up work was queued or is pending.

Sending is fire-and-forget (``ignore_result``): progress is read from the rows the tasks update. A sender
that subscribed to a task's result would, with Redis down, block for about 20 s and raise instead.
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Final

from celery import current_app as app
from django.conf import settings
from django.db import transaction
from kombu.exceptions import OperationalError

from webapp import task_names

logger = logging.getLogger(__name__)


@dataclass(eq=False)
class SendTask:
    """An on-commit callback that sends the task called ``name``; ``sent`` is None until it has run."""

    name: str
    args: tuple[object, ...]
    kwargs: dict[str, object] = field(default_factory=dict)
    sent: bool | None = None

    def __call__(self) -> None:
        try:
            app.send_task(self.name, args=self.args, kwargs=self.kwargs, ignore_result=True)
        except (OperationalError, ConnectionError) as error:
            self.sent = False
            logger.error("could not queue %s%r: %s (re-queue later)", self.name, self.args, error)
        else:
            self.sent = True


class Outcome(enum.StrEnum):
    """What became of the tasks dispatched in a `recording` block."""

    NOTHING = "nothing"  # no task was dispatched
    WAITING = "waiting"  # the transaction has not committed yet
    QUEUED = "queued"  # every task reached the broker
    PENDING = "pending"  # the broker was unreachable: the work waits for it (rows stay pending)


@dataclass
class Sends:
    """The tasks dispatched inside one `recording` block."""

    tasks: list[SendTask] = field(default_factory=list)

    @property
    def outcome(self) -> Outcome:
        if not self.tasks:
            return Outcome.NOTHING
        if any(task.sent is False for task in self.tasks):
            return Outcome.PENDING
        if any(task.sent is None for task in self.tasks):
            return Outcome.WAITING
        return Outcome.QUEUED


_recording: ContextVar[Sends | None] = ContextVar("dispatch_recording", default=None)


@contextmanager
def recording() -> Iterator[Sends]:
    """Collect the tasks dispatched in this block, e.g. by the service a view calls."""
    sends = Sends()
    token = _recording.set(sends)
    try:
        yield sends
    finally:
        _recording.reset(token)


def send_on_commit(task_name: str, *args: object, **kwargs: object) -> SendTask:
    """Send the task ``task_name`` (a `webapp.task_names` constant) once the transaction commits."""
    send = SendTask(task_name, args, kwargs)
    sends = _recording.get()
    if sends is not None:
        sends.tasks.append(send)
    transaction.on_commit(send)
    return send


def send_batches_on_commit(task_name: str, items: Sequence[object], batch_size: int) -> list[SendTask]:
    """One task per ``batch_size`` items (e.g. image ids), each sent once the transaction commits."""
    return [
        send_on_commit(task_name, list(items[start : start + batch_size]))
        for start in range(0, len(items), batch_size)
    ]


class Event(enum.StrEnum):
    """Something an app announces; the apps above it react through the tasks that follow it."""

    IMAGES_REGISTERED = "images registered"  # new photos in the catalogue: embed and index, extract features


# The tasks that follow each event, in the order they are sent, each with the ids in batches.
FOLLOWING_TASKS: Final[dict[Event, tuple[str, ...]]] = {
    Event.IMAGES_REGISTERED: (task_names.INDEX_IMAGES, task_names.EXTRACT_LOCAL_FEATURES),
}


def announce(event: Event, ids: Sequence[int]) -> list[SendTask]:
    """Send every task that follows ``event`` for ``ids`` (in batches of ``INDEX_TASK_BATCH``) once the
    transaction commits."""
    ids = [int(i) for i in ids]
    return [
        send
        for task_name in FOLLOWING_TASKS[event]
        for send in send_batches_on_commit(task_name, ids, settings.INDEX_TASK_BATCH)
    ]
