"""Celery beat sends only registered tasks, to the cpu queue, at the configured interval."""

from __future__ import annotations

from django.conf import settings

from webapp import task_names
from workers.celery import app


def test_every_beat_entry_names_a_registered_cpu_task() -> None:
    import workers.tasks  # noqa: F401  (registers the tasks, as the worker's autodiscovery does)

    schedule = app.conf.beat_schedule
    assert schedule == settings.CELERY_BEAT_SCHEDULE and schedule
    for entry in schedule.values():
        assert entry["task"] in app.tasks, entry
        assert app.amqp.router.route({}, entry["task"], (), {})["queue"].name == "cpu"


def test_expired_queries_are_purged_every_configured_interval() -> None:
    entry = settings.CELERY_BEAT_SCHEDULE["purge-expired-queries"]
    assert entry["task"] == task_names.PURGE_EXPIRED_QUERIES
    assert entry["schedule"] == settings.QUERY_PURGE_INTERVAL_MINUTES * 60
