"""The Jobs page, for staff: the queues, the workers, what they run and what failed, with a retry button."""

from __future__ import annotations

from functools import wraps

from django.contrib import messages
from django.contrib.auth.views import redirect_to_login
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_POST
from redis.exceptions import RedisError

from webapp.accounts.permissions import View, write_permission
from webapp.operations import jobs

# Re-sending a task is the work the reconciler records as a `Resend`, so it takes that permission.
RETRY_PERMISSION = "operations.add_resend"


def staff_only(view: View) -> View:
    """Anonymous visitors are sent to log in; logged-in users who are not staff get 403."""

    @wraps(view)
    def guarded(request: HttpRequest, *args: object, **kwargs: object) -> HttpResponse:
        if not request.user.is_authenticated:
            return redirect_to_login(request.get_full_path())
        if not request.user.is_staff:
            return HttpResponse(
                "Forbidden: the Jobs page is for staff accounts; an administrator can mark yours as staff "
                "in Admin → Users.",
                status=403,
                content_type="text/plain; charset=utf-8",
            )
        return view(request, *args, **kwargs)

    return guarded


@require_GET
@staff_only
def jobs_page(request: HttpRequest) -> HttpResponse:
    overview = jobs.jobs_overview()
    can_retry = request.user.has_perm(RETRY_PERMISSION)
    return render(
        request,
        "operations/jobs.html",
        {"overview": overview, "can_retry": can_retry, "retry_permission": RETRY_PERMISSION},
    )


@write_permission(RETRY_PERMISSION)
@require_POST
@staff_only
def retry(request: HttpRequest, task_id: str) -> HttpResponse:
    try:
        send = jobs.retry_failed_task(task_id)
    except jobs.RetryRefused as refusal:
        messages.error(request, f"Not re-sent: {refusal}.")
    except RedisError as error:
        messages.error(request, f"Task {task_id} not re-sent: the result backend did not answer: {error}")
    else:
        if send.sent is False:
            messages.error(request, f"Task {task_id} ({send.name}) not re-sent: the broker is unreachable.")
        else:
            messages.success(request, f"Task {task_id} re-sent as a new {send.name}.")
    return redirect("operations:jobs")
