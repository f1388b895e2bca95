"""Tasks are sent after commit, and a broker outage then is logged instead of failing the request."""

from __future__ import annotations

import io
import logging

import pytest
from celery import Celery
from django.core.management import call_command

from webapp import localstack
from webapp.catalog.services import register_image
from workers.dispatch import SendTask


def test_a_broker_outage_is_logged_not_raised(caplog: pytest.LogCaptureFixture) -> None:
    app = Celery("outage", broker=f"redis://127.0.0.1:{localstack.free_port()}/0")
    app.conf.broker_connection_retry = False
    app.conf.broker_transport_options = {"max_retries": 0}

    @app.task(name="outage.noop")
    def noop(ids: list[int]) -> None:  # pragma: no cover - never runs
        pass

    with caplog.at_level(logging.ERROR, logger="workers.dispatch"):
        SendTask(noop, ([1, 2],))()
    assert "could not queue outage.noop" in caplog.text


@pytest.mark.django_db
def test_requeue_pending_sends_every_waiting_image(
    scene_photo: bytes, django_capture_on_commit_callbacks
) -> None:
    image = register_image(scene_photo, original_name="a.jpg", schedule=False).image
    out = io.StringIO()
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        call_command("requeue_pending", stdout=out)
    assert "queued 1 pending images" in out.getvalue()
    assert {cb.task.name: cb.args for cb in callbacks}["workers.tasks.gpu.index_images"] == ([image.pk],)
