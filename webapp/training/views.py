"""Training pages (staff): runs with live loss / validation mAP curves, start and cancel."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.admin.views.decorators import staff_member_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from retrieval_core.training import TrainConfig
from retrieval_core.training.pair_mining import MiningConfig
from webapp.accounts.permissions import write_permission
from webapp.embeddings.models import EmbeddingModelVersion
from webapp.training import services
from webapp.training.mining_stages import component_bars
from webapp.training.models import MiningRun, TrainingRun


@staff_member_required
@write_permission("training.add_trainingrun")
@require_http_methods(["GET", "POST"])
def run_list(request: HttpRequest) -> HttpResponse:
    if request.method == "POST":
        recipe = request.POST.get("recipe", "e3")
        try:
            init = request.POST.get("init", "").strip() or "imagenet"
            if request.POST.get("init_version"):
                init = services.version_weights(request.POST["init_version"])
            config = TrainConfig(
                recipe="e3" if recipe == "self" else recipe,  # type: ignore[arg-type]  # TrainConfig refuses others
                init_weights=init,
                epochs=int(request.POST.get("epochs") or 10),
                steps_per_epoch=int(request.POST["steps_per_epoch"])
                if request.POST.get("steps_per_epoch")
                else None,
                p=int(request.POST.get("p") or 8),
                k=int(request.POST.get("k") or 4),
                lr=float(request.POST.get("lr") or 1e-4),
                image_size=int(request.POST.get("image_size") or 224),
            )
            if recipe == "self":
                defaults = MiningConfig()
                mining = MiningConfig(
                    min_inliers=int(request.POST.get("min_inliers") or defaults.min_inliers),
                    neighbours=int(request.POST.get("neighbours") or defaults.neighbours),
                )
                run = services.start_self_training(config, mining, user=request.user)
            else:
                run = services.start_training(config, user=request.user)
        except ValueError as error:
            messages.error(request, f"Could not start training: {error}")
            return redirect("training:list")
        messages.success(request, f"Training run {run.pk} queued.")
        return redirect(run)
    runs = TrainingRun.objects.select_related("model_version", "mining")[:50]
    context = {
        "runs": runs,
        "defaults": TrainConfig(),
        "mining_defaults": MiningConfig(),
        "versions": EmbeddingModelVersion.objects.exclude(state=EmbeddingModelVersion.State.DROPPED),
    }
    return render(request, "training/list.html", context)


@staff_member_required
@require_GET
def run_detail(request: HttpRequest, pk: int) -> HttpResponse:
    run = get_object_or_404(TrainingRun, pk=pk)
    mining = MiningRun.objects.filter(training_run=run).first()
    context = {
        "run": run,
        "mining": mining,
        "component_bars": component_bars(mining.statistics.get("component_sizes", [])) if mining else [],
    }
    return render(request, "training/detail.html", context)


@staff_member_required
@write_permission("training.change_trainingrun")
@require_POST
def cancel(request: HttpRequest, pk: int) -> HttpResponse:
    run = get_object_or_404(TrainingRun, pk=pk)
    try:
        services.request_cancel(run)
    except ValueError as error:
        messages.error(request, str(error))
    else:
        messages.success(
            request, "Cancelling: the run stops at its next step and keeps a resumable checkpoint."
        )
    return redirect(run)
