"""Celery worker metrics: tasks by name and state, their durations, those running now; and the worker's own
metrics port.

Each worker serves its metrics over HTTP on ``WORKER_METRICS_PORT`` (0 = none), started once the worker is
ready: a worker may run on another machine than the web server, so ``/metrics`` of the web cannot see it.
In a prefork pool (``-P prefork``) the tasks run in child processes: start the worker with
``PROMETHEUS_MULTIPROC_DIR`` set (an empty folder of its own) and the port adds up every child's files.
The product's workers run ``-P solo`` (Procfile, compose, Kubernetes), where the worker is one process.
"""

from __future__ import annotations

import logging
import os
import time
from typing import Any

from celery import Task
from celery.signals import (
    task_failure,
    task_postrun,
    task_prerun,
    task_retry,
    task_success,
    worker_process_shutdown,
    worker_ready,
)
from django.conf import settings
from prometheus_client import multiprocess, start_http_server

from webapp.metrics import TASK_DURATION, TASKS, TASKS_RUNNING, multiprocess_dir, scrape_registry

logger = logging.getLogger(__name__)

_started: dict[str, tuple[str, float]] = {}  # task id -> (name, perf_counter at start)


def _name(task: Task[Any, Any] | None, sender: object = None) -> str:
    return str(getattr(task or sender, "name", None) or "unknown")


def _on_start(task_id: str = "", task: Task[Any, Any] | None = None, **_: object) -> None:
    name = _name(task)
    _started[task_id] = (name, time.perf_counter())
    TASKS_RUNNING.labels(name).inc()


def _on_end(task_id: str = "", task: Task[Any, Any] | None = None, **_: object) -> None:
    name, started = _started.pop(task_id, (_name(task), None))
    TASKS_RUNNING.labels(name).dec()
    if started is not None:
        TASK_DURATION.labels(name).observe(time.perf_counter() - started)


def _on_success(sender: object = None, **_: object) -> None:
    TASKS.labels(_name(None, sender), "succeeded").inc()


def _on_failure(sender: object = None, **_: object) -> None:
    TASKS.labels(_name(None, sender), "failed").inc()


def _on_retry(sender: object = None, **_: object) -> None:
    TASKS.labels(_name(None, sender), "retried").inc()


def _serve_metrics(**_: object) -> None:
    port = settings.WORKER_METRICS_PORT
    if not port:
        return
    try:
        start_http_server(port, registry=scrape_registry())
    except OSError as error:  # a port taken must not stop the worker: it still does its work
        logger.error("worker metrics not served, port %d: %s", port, error)
        return
    logger.info("worker metrics on port %d", port)


def _pool_process_exit(pid: int = 0, **_: object) -> None:
    """A prefork child that exits: its counters still count, its running-tasks gauge no longer."""
    if multiprocess_dir():
        multiprocess.mark_process_dead(pid or os.getpid())  # type: ignore[no-untyped-call]  # unannotated upstream


def connect_celery() -> None:
    """Connect the handlers (idempotent)."""
    task_prerun.connect(_on_start, weak=False, dispatch_uid="metrics.task_start")
    task_postrun.connect(_on_end, weak=False, dispatch_uid="metrics.task_end")
    task_success.connect(_on_success, weak=False, dispatch_uid="metrics.task_success")
    task_failure.connect(_on_failure, weak=False, dispatch_uid="metrics.task_failure")
    task_retry.connect(_on_retry, weak=False, dispatch_uid="metrics.task_retry")
    worker_ready.connect(_serve_metrics, weak=False, dispatch_uid="metrics.serve")
    worker_process_shutdown.connect(_pool_process_exit, weak=False, dispatch_uid="metrics.pool_exit")
