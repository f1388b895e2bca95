"""Collection pages: upload photos, watch them being indexed, look at one image."""

from __future__ import annotations

from django.conf import settings
from django.contrib import messages
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_http_methods

from retrieval_core.imaging import ImageLoadError
from webapp.accounts.permissions import write_permission
from webapp.accounts.selectors import can_upload, landmark_refusal
from webapp.catalog import selectors, services
from webapp.catalog.models import Image
from webapp.catalog.uploads import read_upload
from webapp.operations.selectors import latest_drift
from webapp.reranking.selectors import query_evidence


@write_permission("catalog.add_image")
@require_http_methods(["GET", "POST"])
def collection(request: HttpRequest) -> HttpResponse:
    if request.method == "POST":
        return _upload(request)
    uploaded_ids = [int(i) for i in request.session.get("uploaded_ids", [])]
    return render(
        request,
        "catalog/collection.html",
        {
            "progress": selectors.indexing_progress(),
            "upload_progress": selectors.indexing_progress(uploaded_ids) if uploaded_ids else None,
            "uploaded_ids": ",".join(map(str, uploaded_ids)),
            "images": selectors.recent_images(),
            "landmarks": selectors.landmarks_with_counts(),
            "max_mb": settings.UPLOAD_MAX_BYTES // (1024 * 1024),
            "can_upload": can_upload(request.user),
            "drift": latest_drift(),
        },
    )


def _upload(request: HttpRequest) -> HttpResponse:
    refusal = landmark_refusal(request.user, request.POST.get("landmark", ""))
    if refusal is not None:
        messages.error(request, refusal)
        return redirect("catalog:collection")
    files = request.FILES.getlist("photos")
    if not files:
        messages.error(request, "Choose at least one photo to upload.")
        return redirect("catalog:collection")
    readable: list[tuple[str, bytes]] = []
    errors: list[tuple[str, str]] = []
    for upload in files:
        try:
            readable.append((upload.name or "upload", read_upload(upload)))
        except ImageLoadError as error:
            errors.append((upload.name or "upload", str(error)))
    images, failed = services.upload_images(readable, landmark_name=request.POST.get("landmark", ""))
    errors.extend(failed)
    request.session["uploaded_ids"] = [image.pk for image in images]
    if images:
        messages.success(request, f"{len(images)} photo(s) added; they are being indexed.")
    for name, message in errors:
        messages.error(request, f"{name}: {message}" if not message.startswith(name) else message)
    return redirect("catalog:collection")


@require_GET
def progress(request: HttpRequest) -> JsonResponse:
    raw = request.GET.get("ids", "")
    try:
        ids = [int(part) for part in raw.split(",") if part.strip()] or None
    except ValueError:
        return JsonResponse({"error": "ids must be a comma-separated list of integers"}, status=400)
    return JsonResponse(selectors.indexing_progress(ids).as_dict())


@require_GET
def image_detail(request: HttpRequest, pk: int) -> HttpResponse:
    image = get_object_or_404(Image.objects.select_related("landmark", "exif"), pk=pk)
    context: dict[str, object] = {"image": image}
    evidence = query_evidence(request.GET.get("query"), image.pk)
    if evidence is not None:
        context["query"], points = evidence
        context["inliers"] = len(points)
    return render(request, "catalog/image_detail.html", context)
