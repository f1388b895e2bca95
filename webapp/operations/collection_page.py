"""The collection page: upload photos, watch them being indexed, and see the reconciler's last findings
(drift between the catalogue, the files and the vector store), which is why it lives above the catalogue."""

from __future__ import annotations

from django.conf import settings
from django.contrib import messages
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods

from retrieval_core.imaging import ImageLoadError
from webapp.accounts.permissions import write_permission
from webapp.accounts.selectors import can_upload
from webapp.catalog import selectors, services
from webapp.catalog.selectors import landmark_refusal
from webapp.catalog.uploads import read_upload
from webapp.operations.selectors import latest_drift


@write_permission("catalog.add_image")
@require_http_methods(["GET", "POST"])
def collection(request: HttpRequest) -> HttpResponse:
    if request.method == "POST":
        return _upload(request)
    uploaded_ids = [int(i) for i in request.session.get("uploaded_ids", [])]
    return render(
        request,
        "operations/collection.html",
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
    """One form POST with many photos (redirects with messages), or, from the page's drop zone, one photo
    per request (``Accept: application/json``) so that each file has its own progress and answer."""
    wants_json = "application/json" in request.headers.get("Accept", "")
    refusal = landmark_refusal(request.user, request.POST.get("landmark", ""))
    if refusal is not None:
        return _refused(request, refusal, 403, wants_json)
    files = request.FILES.getlist("photos")
    if not files:
        return _refused(request, "Choose at least one photo to upload.", 400, wants_json)
    readable: list[tuple[str, bytes]] = []
    errors: list[tuple[str, str]] = []
    for upload in files:
        try:
            readable.append((upload.name or "upload", read_upload(upload)))
        except ImageLoadError as error:
            errors.append((upload.name or "upload", str(error)))
    images, failed = services.upload_images(readable, landmark_name=request.POST.get("landmark", ""))
    errors.extend(failed)
    new_ids = [image.pk for image in images]
    if wants_json:  # one request per file: the page's "your last upload" gathers all of them
        request.session["uploaded_ids"] = [*request.session.get("uploaded_ids", []), *new_ids][-500:]
        payload = {
            "images": [{"id": image.pk, "status": image.status, "page_url": image.get_absolute_url()}
                       for image in images],
            "errors": [{"name": name, "error": message} for name, message in errors],
        }  # fmt: skip
        return JsonResponse(payload, status=201 if images else 400)
    request.session["uploaded_ids"] = new_ids
    if images:
        messages.success(request, f"{len(images)} photo(s) added; they are being indexed.")
    for name, message in errors:
        messages.error(request, f"{name}: {message}" if not message.startswith(name) else message)
    return redirect("operations:collection")


def _refused(request: HttpRequest, message: str, status: int, wants_json: bool) -> HttpResponse:
    if wants_json:
        return JsonResponse({"images": [], "errors": [{"name": "", "error": message}]}, status=status)
    messages.error(request, message)
    return redirect("operations:collection")
