"""The staff Jobs page on the real stack (Redis broker and result backend, a Celery worker): who may see it,
what it shows, and the retry button re-sending a failed task by name with its arguments."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable

import pytest
from celery import Celery, current_app
from django.contrib.auth.models import Permission, User
from django.test import Client

from tests.conftest import LiveServices
from webapp import localstack, task_names
from webapp.dispatch import send_on_commit
from webapp.operations import jobs
from webapp.operations.jobs import FailedTask, failed_tasks

pytestmark = [pytest.mark.services, pytest.mark.django_db(transaction=True)]


def _client(user: User | None) -> Client:
    client = Client()
    if user is not None:
        client.force_login(user)
    return client


def _staff(retry: bool) -> User:
    user = User.objects.create_user(f"staff-{uuid.uuid4().hex[:6]}", password="pw", is_staff=True)
    if retry:
        user.user_permissions.add(Permission.objects.get(codename="add_resend"))
    return user


def _wait_for(found: Callable[[], list[FailedTask]], what: str, timeout: float = 60.0) -> list[FailedTask]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if tasks := found():
            return tasks
        time.sleep(0.3)
    raise AssertionError(f"no {what} within {timeout:g} s")


def test_only_staff_see_the_jobs_page(live_services: LiveServices) -> None:
    anonymous = _client(None).get("/jobs/")
    assert anonymous.status_code == 302 and "/login/" in anonymous["Location"]
    member = User.objects.create_user("member", password="pw")
    forbidden = _client(member).get("/jobs/")
    assert forbidden.status_code == 403 and "staff" in forbidden.content.decode()
    assert "/jobs/" not in _client(member).get("/collection/").content.decode()  # no nav link
    staff = _client(_staff(retry=False))
    page = staff.get("/jobs/")
    assert page.status_code == 200
    assert 'href="/jobs/"' in staff.get("/collection/").content.decode()
    for queue in ("cpu", "gpu"):
        assert f"<td>{queue}</td>" in page.content.decode()


def test_a_failed_task_is_listed_and_retry_sends_it_again_by_name(
    live_services: LiveServices, celery_worker_process: object
) -> None:
    marker = f"unexpected-{uuid.uuid4().hex}"  # ping takes no argument: the worker's run fails

    def failures() -> list[FailedTask]:
        return [task for task in failed_tasks(limit=1000) if task.args == [marker]]

    send = send_on_commit(task_names.PING, marker)
    assert send.sent is True
    [failed] = _wait_for(failures, "failure record of the ping")
    assert failed.name == task_names.PING and "TypeError" in failed.error and failed.retryable

    without_permission = _client(_staff(retry=False))
    page = without_permission.get("/jobs/").content.decode()
    assert failed.id in page and "online" in page and "test@" in page
    assert "operations.add_resend" in page and f"/jobs/{failed.id}/retry/" not in page
    refused = without_permission.post(f"/jobs/{failed.id}/retry/")
    assert refused.status_code == 403 and [task.id for task in failures()] == [failed.id]

    operator = _client(_staff(retry=True))
    assert f"/jobs/{failed.id}/retry/" in operator.get("/jobs/").content.decode()
    answer = operator.post(f"/jobs/{failed.id}/retry/", follow=True)
    assert f"re-sent as a new {task_names.PING}" in answer.content.decode()
    # The old record is forgotten; the task, sent again by name with the same argument, fails again.
    [again] = _wait_for(failures, "failure record of the re-sent ping")
    assert again.id != failed.id and again.name == task_names.PING
    second = operator.post(f"/jobs/{failed.id}/retry/", follow=True)
    assert "has no failure record" in second.content.decode()


def test_a_task_of_no_known_name_is_listed_but_not_retried(
    live_services: LiveServices, celery_worker_process: object
) -> None:
    task_id = f"unknown-{uuid.uuid4().hex}"
    current_app.send_task("not.a.product.task", task_id=task_id, queue="cpu")
    _wait_for(lambda: [task for task in failed_tasks(1000) if task.id == task_id], "NotRegistered record")
    operator = _client(_staff(retry=True))
    page = operator.get("/jobs/").content.decode()
    assert task_id in page and "NotRegistered" in page and f"/jobs/{task_id}/retry/" not in page
    refused = operator.post(f"/jobs/{task_id}/retry/", follow=True)
    assert "is not a task of this product" in refused.content.decode()
    assert any(task.id == task_id for task in failed_tasks(limit=1000))


def _celery_app(url: str) -> Celery:
    """A Celery app configured like the real one, on another broker and result backend."""
    app = Celery("jobs-under-test", set_as_current=False)
    app.config_from_object("django.conf:settings", namespace="CELERY")
    app.conf.update(broker_url=url, result_backend=url)
    return app


def test_the_page_says_no_worker_answered_rather_than_failing(
    live_services: LiveServices, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On a broker database no worker listens to, the page still answers and says so."""
    monkeypatch.setattr(jobs, "current_app", _celery_app(live_services.redis_url.rsplit("/", 1)[0] + "/2"))
    page = _client(_staff(retry=True)).get("/jobs/")
    assert page.status_code == 200
    text = page.content.decode()
    assert "No worker answered" in text and "no worker answered within 1 s" in text
    assert "No failed task on record" in text


def test_an_unreachable_broker_is_named_on_the_page(db: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(jobs, "current_app", _celery_app(f"redis://127.0.0.1:{localstack.free_port()}/0"))
    page = _client(_staff(retry=True)).get("/jobs/")
    assert page.status_code == 200
    text = page.content.decode()
    assert "No worker answered" in text and "could not be reached" in text
    assert "Failed tasks unknown" in text
