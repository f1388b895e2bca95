"""Model versions page (staff): activate one (blue/green re-index), drop a retired one's collection."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.admin.views.decorators import staff_member_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_POST

from webapp.accounts.permissions import write_permission
from webapp.embeddings import services
from webapp.embeddings.models import EmbeddingModelVersion


@staff_member_required
@require_GET
def version_list(request: HttpRequest) -> HttpResponse:
    services.get_active_version()  # the configured default exists before anything is compared to it
    return render(request, "embeddings/versions.html", {"versions": EmbeddingModelVersion.objects.all()})


@staff_member_required
@write_permission("embeddings.change_embeddingmodelversion")
@require_POST
def activate(request: HttpRequest, pk: int) -> HttpResponse:
    version = get_object_or_404(EmbeddingModelVersion, pk=pk)
    try:
        services.activate_version(version)
    except ValueError as error:
        messages.error(request, str(error))
    else:
        messages.success(request, f"Re-indexing into {version}; search switches to it when it is complete.")
    return redirect("embeddings:versions")


@staff_member_required
@write_permission("embeddings.change_embeddingmodelversion")
@require_POST
def drop(request: HttpRequest, pk: int) -> HttpResponse:
    version = get_object_or_404(EmbeddingModelVersion, pk=pk)
    try:
        services.drop_version(version)
    except ValueError as error:
        messages.error(request, str(error))
    else:
        messages.success(request, f"Dropped the collection of {version}.")
    return redirect("embeddings:versions")
