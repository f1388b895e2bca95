"""Evaluation pages: list and start runs (staff), one run's table and plots, runs side by side."""

from __future__ import annotations

from pathlib import Path

from django.contrib import messages
from django.contrib.admin.views.decorators import staff_member_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_http_methods

from retrieval_core.eval.options import LadderOptions
from webapp.accounts.permissions import write_permission
from webapp.evaluation import selectors, services
from webapp.evaluation.models import EvaluationRun


@staff_member_required
@write_permission("evaluation.add_evaluationrun")
@require_http_methods(["GET", "POST"])
def run_list(request: HttpRequest) -> HttpResponse:
    if request.method == "POST":
        return _start(request)
    return render(
        request, "evaluation/list.html", {"runs": selectors.recent_runs(), "defaults": LadderOptions()}
    )


def _start(request: HttpRequest) -> HttpResponse:
    root = request.POST.get("root", "").strip()
    try:
        options = LadderOptions(
            image_size=int(request.POST.get("image_size") or LadderOptions.image_size),
            checkpoints=tuple(
                line.strip() for line in request.POST.get("checkpoints", "").splitlines() if line.strip()
            ),
            vlad_k=int(request.POST.get("vlad_k") or 0),
            patches=int(request.POST.get("patches") or 0),
        )
        run = services.start_evaluation(Path(root), options, user=request.user)
    except ValueError as error:
        messages.error(request, f"Could not start the evaluation: {error}")
        return redirect("evaluation:list")
    messages.success(request, f"Evaluation {run.pk} queued.")
    return redirect(run)


@staff_member_required
@require_GET
def run_detail(request: HttpRequest, pk: int) -> HttpResponse:
    run = get_object_or_404(EvaluationRun, pk=pk)
    return render(request, "evaluation/detail.html", {"run": run, "plots": selectors.plot_urls(run)})


@staff_member_required
@require_GET
def compare(request: HttpRequest) -> HttpResponse:
    try:
        ids = [int(part) for part in request.GET.get("ids", "").split(",") if part.strip()]
    except ValueError:
        return HttpResponse("ids must be a comma-separated list of run numbers", status=400)
    runs = list(EvaluationRun.objects.filter(pk__in=ids, status=EvaluationRun.Status.DONE).order_by("pk"))
    _, table = selectors.comparison(runs)
    return render(request, "evaluation/compare.html", {"runs": runs, "table": table})
