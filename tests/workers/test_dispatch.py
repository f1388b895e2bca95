"""Tasks are sent by name after commit, and a broker outage then is logged instead of failing the request."""

from __future__ import annotations

import io
import logging
import threading

import pytest
from celery import current_app
from django.core.management import call_command
from django.db import transaction

from tests.conftest import LiveServices
from webapp import task_names
from webapp.catalog.services import register_image
from webapp.dispatch import (
    FOLLOWING_TASKS,
    Event,
    Outcome,
    SendTask,
    recording,
    send_batches_on_commit,
    send_on_commit,
)
from workers.celery import app

QUEUES = {  # first matching prefix
    "workers.tasks.gpu.": "gpu",
    "workers.tasks.mining.prepare_mining": "gpu",  # may embed a collection folder
    "workers.tasks.mining.": "cpu",
    "workers.tasks.cpu.": "cpu",
    "workers.tasks.analysis.": "cpu",
    "workers.tasks.operations.": "cpu",
}
NAMES = {value for key, value in vars(task_names).items() if key.isupper()}


def test_every_task_name_is_registered_and_routed_to_its_queue() -> None:
    import workers.tasks  # noqa: F401  (registers the tasks, as the worker's autodiscovery does)

    registered = {name for name in app.tasks if name.startswith("workers.")}
    assert registered == NAMES
    for name in NAMES:
        expected = next(queue for prefix, queue in QUEUES.items() if name.startswith(prefix))
        assert app.amqp.router.route({}, name, (), {})["queue"].name == expected, name


def test_a_broker_outage_is_logged_recorded_and_not_raised(
    broker_down: None, caplog: pytest.LogCaptureFixture
) -> None:
    send = SendTask(task_names.INDEX_IMAGES, ([1, 2],))
    with caplog.at_level(logging.ERROR, logger="webapp.dispatch"):
        send()
    assert send.sent is False
    assert f"could not queue {task_names.INDEX_IMAGES}" in caplog.text


@pytest.mark.django_db
def test_tasks_wait_for_the_commit_and_batches_split_the_items(django_capture_on_commit_callbacks) -> None:
    with recording() as sends, django_capture_on_commit_callbacks(execute=False) as callbacks:
        batches = send_batches_on_commit(task_names.INDEX_IMAGES, [1, 2, 3, 4, 5], 2)
    assert [send.args for send in batches] == [([1, 2],), ([3, 4],), ([5],)]
    assert callbacks == batches == sends.tasks
    assert sends.outcome == Outcome.WAITING


@pytest.mark.services
@pytest.mark.django_db(transaction=True)
def test_a_task_sent_after_commit_reaches_the_broker(live_services: LiveServices) -> None:
    with recording() as sends:
        with transaction.atomic():
            send = send_on_commit(task_names.PING)
            assert send.sent is None
        assert send.sent is True
    assert sends.outcome == Outcome.QUEUED


@pytest.mark.django_db
def test_requeue_pending_sends_every_waiting_image(
    scene_photo: bytes, django_capture_on_commit_callbacks
) -> None:
    image = register_image(scene_photo, original_name="a.jpg", schedule=False).image
    out = io.StringIO()
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        call_command("requeue_pending", stdout=out)
    assert "queued 1 pending images" in out.getvalue()
    assert {cb.name: cb.args for cb in callbacks}[task_names.INDEX_IMAGES] == ([image.pk],)


@pytest.mark.django_db
def test_a_registered_image_is_announced_and_each_following_task_gets_it(
    scene_photo: bytes, django_capture_on_commit_callbacks
) -> None:
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        image = register_image(scene_photo, original_name="a.jpg").image
    sent = [(callback.name, callback.args) for callback in callbacks if isinstance(callback, SendTask)]
    following = FOLLOWING_TASKS[Event.IMAGES_REGISTERED]
    assert following == (task_names.INDEX_IMAGES, task_names.EXTRACT_LOCAL_FEATURES)
    assert [(name, ([image.pk],)) for name in following] == [item for item in sent if item[0] in following]


def test_dispatch_sends_through_the_workers_app_in_every_thread() -> None:
    """Django loads the installed app ``workers``, whose Celery app is the default in any thread."""
    seen: list[str] = []
    thread = threading.Thread(target=lambda: seen.append(current_app.main))
    thread.start()
    thread.join()
    assert seen == [app.main] == ["landmarks"]
