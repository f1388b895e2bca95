"""A request id on every log line of a request, and of the Celery tasks the request queued.

- `RequestIdMiddleware` takes the client's (or the proxy's) ``X-Request-ID`` when it is a sane token, or
  makes one, keeps it in a context variable for the request and returns it in the response's ``X-Request-ID``.
- `RequestIdLogFilter` (on the log handlers, ``LOGGING`` in the settings) writes it into every record as
  ``request_id``, so the plain and the JSON formats both show it.
- `connect_celery` carries it into tasks through Celery's own signals: a task published while a request
  (or a task) has an id gets the id as a message header; the worker takes it back before the task runs, so
  the worker's lines carry the id of the request that queued the work, and so do the tasks it queues in
  turn. Signals, not the dispatch helper: whichever code sends a task, the header goes with it.
"""

from __future__ import annotations

import logging
import re
import uuid
from collections.abc import Callable
from contextvars import ContextVar, Token
from typing import Any

from celery import Task
from celery.signals import before_task_publish, task_postrun, task_prerun
from django.core.signals import request_finished
from django.dispatch import receiver
from django.http import HttpRequest, HttpResponse

HEADER = "X-Request-ID"
TASK_HEADER = "request_id"  # the Celery message header
# What an id from outside may look like (bounded, no spaces or control characters to forge log lines).
_SANE = re.compile(r"^[A-Za-z0-9._:@/+=-]{1,128}$")

current_request_id: ContextVar[str | None] = ContextVar("request_id", default=None)
_task_tokens: dict[str, Token[str | None]] = {}


def new_request_id() -> str:
    return uuid.uuid4().hex


def accepted_request_id(value: str | None) -> str:
    """``value`` when it is a sane token, else a fresh id (a client cannot write anything into the logs)."""
    return value if value and _SANE.match(value) else new_request_id()


class RequestIdMiddleware:
    """Sets the request's id for its log lines and tasks; answers it in ``X-Request-ID`` (first in the
    middleware, so even a refused search has one)."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        request_id = accepted_request_id(request.headers.get(HEADER))
        # Kept until the request finishes (`_on_request_finished`), not reset here: Django logs a 4xx/5xx
        # answer ("Not Found: /x") after the middleware has returned, and that line is the request's too.
        current_request_id.set(request_id)
        response = self.get_response(request)
        response[HEADER] = request_id
        return response


@receiver(request_finished, dispatch_uid="request_id.request_finished")
def _on_request_finished(**_: object) -> None:
    current_request_id.set(None)


class RequestIdLogFilter(logging.Filter):
    """Adds ``request_id`` (``-`` outside a request or task) to every record that passes the handler."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = current_request_id.get() or "-"
        return True


def _on_publish(headers: dict[str, Any] | None = None, **_: object) -> None:
    request_id = current_request_id.get()
    if request_id and headers is not None:
        headers.setdefault(TASK_HEADER, request_id)


def _task_request_id(task: Task[Any, Any]) -> str | None:
    request = task.request
    value = getattr(request, TASK_HEADER, None) or (getattr(request, "headers", None) or {}).get(TASK_HEADER)
    return value if isinstance(value, str) and _SANE.match(value) else None


def _on_task_start(task_id: str = "", task: Task[Any, Any] | None = None, **_: object) -> None:
    if task is not None:
        _task_tokens[task_id] = current_request_id.set(_task_request_id(task))


def _on_task_end(task_id: str = "", **_: object) -> None:
    token = _task_tokens.pop(task_id, None)
    if token is not None:
        try:
            current_request_id.reset(token)
        except ValueError:  # ended in another context than it started (a thread pool): just clear it
            current_request_id.set(None)


def connect_celery() -> None:
    """Connect the handlers (idempotent): publishing adds the header, running a task takes it back."""
    before_task_publish.connect(_on_publish, weak=False, dispatch_uid="request_id.publish")
    task_prerun.connect(_on_task_start, weak=False, dispatch_uid="request_id.task_start")
    task_postrun.connect(_on_task_end, weak=False, dispatch_uid="request_id.task_end")
