"""The curator is told truthfully whether an action's follow-up work reached the task queue or is pending.

Real commits (transactional tests), so the tasks are sent as in production: to a broker on a closed port,
or to a Redis database no worker reads, where the test then finds them.
"""

from __future__ import annotations

import logging

import pytest
from django.contrib import messages
from django.test import Client
from redis import Redis

from webapp import task_names
from webapp.catalog.models import Image

pytestmark = pytest.mark.django_db(transaction=True)


def _post(client: Client, url: str, data: dict[str, object]) -> list[messages.storage.base.Message]:
    response = client.post(url, data)
    assert response.status_code == 302
    return list(response.wsgi_request._messages)


def _restore(client: Client, image: Image) -> messages.storage.base.Message:
    """Take the image out of the index, then restore it: the restore needs it re-indexed."""
    _post(client, "/dataset/curate/", {"action": "remove_from_index", "image": image.pk})
    return _post(client, "/dataset/curate/", {"action": "restore", "image": image.pk})[-1]


def test_a_restore_with_the_broker_down_is_saved_and_says_the_reindexing_is_pending(
    broker_down: None, curator_client: Client, images: list[Image], caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.ERROR, logger="webapp.dispatch"):
        message = _restore(curator_client, images[0])
    assert message.level == messages.WARNING
    assert "restored 1 image(s). Re-indexing is pending: the task queue is unreachable" in message.message
    assert Image.objects.get(pk=images[0].pk).status == Image.Status.PENDING  # requeue_pending sends it
    assert f"could not queue {task_names.INDEX_IMAGES}" in caplog.text


def test_a_restore_says_queued_once_the_broker_holds_the_tasks(
    isolated_broker: Redis, curator_client: Client, images: list[Image]
) -> None:
    message = _restore(curator_client, images[0])
    assert message.level == messages.SUCCESS
    assert message.message.endswith("restored 1 image(s). Re-indexing queued.")
    assert (isolated_broker.llen("gpu"), isolated_broker.llen("cpu")) == (1, 1)  # embedding, local features


def test_an_action_that_needs_no_work_says_nothing_about_queues(
    broker_down: None, curator_client: Client, images: list[Image]
) -> None:
    message = _post(curator_client, "/dataset/curate/", {"action": "mark_noise", "image": images[0].pk})[-1]
    assert message.level == messages.SUCCESS
    assert message.message.endswith(": marked 1 image(s) as noise.")


def test_rerunning_the_analysis_says_whether_it_was_queued(
    isolated_broker: Redis, curator_client: Client, images: list[Image]
) -> None:
    message = _post(curator_client, "/dataset/analyse/", {})[-1]
    assert (message.level, message.message) == (
        messages.SUCCESS,
        "Analysis of the whole collection queued (3 images).",
    )
    assert isolated_broker.llen("cpu") == 2  # the quality batch and the landmarks batch


def test_rerunning_the_analysis_with_the_broker_down_says_it_was_not_queued(
    broker_down: None, curator_client: Client, images: list[Image]
) -> None:
    message = _post(curator_client, "/dataset/analyse/", {"landmark": images[0].landmark_id})[-1]
    assert message.level == messages.ERROR
    assert message.message.startswith("The analysis of Alpha was not queued: the task queue is unreachable.")
