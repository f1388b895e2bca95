"""What the Celery side is doing, for the staff Jobs page: queue depths, workers that answer, the tasks they
are running, and the failed tasks kept in the result backend, which can be re-sent by name.

Each part is read on its own and a part that cannot be read says why (``*_error``) instead of failing the
page: a down broker or a silent worker is exactly when an operator opens it. Failed tasks are the
``FAILURE`` records of the Redis result backend: `CELERY_RESULT_EXTENDED` stores each task's name and
arguments with its error, and `CELERY_TASK_STORE_ERRORS_EVEN_IF_IGNORED` keeps the failures of the tasks
`webapp.dispatch` sends fire-and-forget. The backend expires them after ``CELERY_RESULT_EXPIRES`` (a day).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final

from celery import current_app
from celery.backends.redis import RedisBackend
from kombu.exceptions import OperationalError
from redis.exceptions import RedisError

from webapp import dispatch, task_names
from webapp.operations.collectors import QueueDepths, read_queue_depths

logger = logging.getLogger(__name__)

INSPECT_TIMEOUT_SECONDS: Final = 1.0  # a worker busy on a long task still answers its control queue
FAILED_SHOWN: Final = 50
RECORDS_SCANNED: Final = 10_000  # result records read at most per page view
# Only the product's own tasks may be re-sent, whatever name a record in Redis carries.
RETRYABLE: Final = frozenset(
    value for name, value in vars(task_names).items() if name.isupper() and isinstance(value, str)
)


@dataclass(frozen=True)
class RunningTask:
    id: str
    name: str
    worker: str
    args: str
    started: datetime | None


@dataclass(frozen=True)
class FailedTask:
    id: str
    name: str
    args: list[Any]
    kwargs: dict[str, Any]
    error: str
    finished: datetime | None
    worker: str
    queue: str

    @property
    def retryable(self) -> bool:
        return self.name in RETRYABLE


@dataclass(frozen=True)
class JobsOverview:
    """Everything the Jobs page shows; an ``*_error`` says why its part is missing."""

    queues: QueueDepths | None = None
    queues_error: str = ""
    workers: dict[str, int] = field(default_factory=dict)  # worker name → tasks it is running
    workers_error: str = ""
    running: list[RunningTask] = field(default_factory=list)
    failed: list[FailedTask] = field(default_factory=list)
    failed_error: str = ""


def jobs_overview() -> JobsOverview:
    queues, queues_error = None, ""
    try:
        queues = read_queue_depths()
    except RedisError as error:
        queues_error = f"the broker (Redis) did not answer: {error}"
        logger.warning("jobs page: %s", queues_error)
    workers, running, workers_error = _workers()
    failed, failed_error = [], ""
    try:
        failed = failed_tasks()
    except RedisError as error:
        failed_error = f"the result backend (Redis) did not answer: {error}"
        logger.warning("jobs page: %s", failed_error)
    return JobsOverview(queues, queues_error, workers, workers_error, running, failed, failed_error)


def _workers() -> tuple[dict[str, int], list[RunningTask], str]:
    """Workers that answer a ping within the timeout, and the tasks each reports as active."""
    try:
        inspect = current_app.control.inspect(timeout=INSPECT_TIMEOUT_SECONDS)
        pongs: Mapping[str, object] = inspect.ping() or {}
        active: Mapping[str, list[Any]] = (inspect.active() or {}) if pongs else {}
    except (OperationalError, ConnectionError, RedisError) as error:
        logger.warning("jobs page: workers not inspected: %s", error)
        return {}, [], f"the broker could not be reached to ask the workers: {error}"
    if not pongs:
        return {}, [], f"no worker answered within {INSPECT_TIMEOUT_SECONDS:g} s"
    running = [
        RunningTask(
            id=str(task.get("id", "")),
            name=str(task.get("name", "")),
            worker=worker,
            args=str(task.get("args", "")),
            started=datetime.fromtimestamp(task["time_start"]) if task.get("time_start") else None,
        )
        for worker, tasks in active.items()
        for task in tasks
    ]
    workers = {worker: len(active.get(worker, [])) for worker in sorted(pongs)}
    return workers, running, ""


def _result_backend() -> RedisBackend:
    backend = current_app.backend
    if not isinstance(backend, RedisBackend):
        raise RedisError(f"failed tasks are read from a Redis result backend, not {type(backend).__name__}")
    return backend


def failed_tasks(limit: int = FAILED_SHOWN) -> list[FailedTask]:
    """The latest ``FAILURE`` records of the result backend, newest first; raises `RedisError`."""
    backend = _result_backend()
    client = backend.client
    keys = []
    prefix: str | bytes = backend.task_keyprefix  # bytes at run time (the backend's key_t)
    pattern = (prefix if isinstance(prefix, bytes) else prefix.encode()) + b"*"
    for key in client.scan_iter(match=pattern, count=1000):
        keys.append(key)
        if len(keys) >= RECORDS_SCANNED:
            break
    failed = []
    for start in range(0, len(keys), 500):
        for raw in client.mget(keys[start : start + 500]):
            if raw is None:
                continue  # expired between SCAN and MGET
            meta = backend.decode_result(raw)
            if meta.get("status") == "FAILURE":
                failed.append(_failed(meta))
    failed.sort(key=lambda task: task.finished or datetime.min, reverse=True)
    return failed[:limit]


def _failed(meta: Mapping[str, Any]) -> FailedTask:
    error = meta.get("result")
    finished = meta.get("date_done")
    return FailedTask(
        id=str(meta.get("task_id", "")),
        name=str(meta.get("name") or ""),
        args=list(meta.get("args") or []),
        kwargs=dict(meta.get("kwargs") or {}),
        error=f"{type(error).__name__}: {error}" if isinstance(error, BaseException) else str(error),
        finished=datetime.fromisoformat(finished) if isinstance(finished, str) else finished,
        worker=str(meta.get("worker") or ""),
        queue=str(meta.get("queue") or ""),
    )


class RetryRefused(Exception):
    """The task cannot be re-sent; the message says why."""


def retry_failed_task(task_id: str) -> dispatch.SendTask:
    """Send the failed task ``task_id`` again, by name and with its arguments, through `webapp.dispatch`, and
    forget its failure record once the send succeeded (the new run has its own). Raises `RetryRefused`, or
    `RedisError` when the result backend is unreachable."""
    backend = _result_backend()
    raw = backend.client.get(backend.get_key_for_task(task_id))
    if raw is None:
        raise RetryRefused(f"task {task_id} has no failure record (already re-sent, or expired)")
    meta = backend.decode_result(raw)
    if meta.get("status") != "FAILURE":
        raise RetryRefused(f"task {task_id} did not fail (its state is {meta.get('status')})")
    failed = _failed(meta)
    if not failed.retryable:
        name = failed.name or "no name recorded"
        raise RetryRefused(f"task {task_id} ({name}) is not a task of this product")
    send = dispatch.send_on_commit(failed.name, *failed.args, **failed.kwargs)
    if send.sent is not False:
        backend.forget(task_id)
    logger.info("re-sent failed task %s as %s%r (sent: %s)", task_id, failed.name, failed.args, send.sent)
    return send
