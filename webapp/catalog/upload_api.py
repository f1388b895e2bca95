"""POST /api/images/: index photos programmatically, with a per-user API token (see webapp.accounts)."""

from __future__ import annotations

from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from retrieval_core.imaging import ImageLoadError
from webapp.accounts.permissions import token_required
from webapp.catalog import services
from webapp.catalog.selectors import landmark_refusal
from webapp.catalog.uploads import UploadTooLarge, read_upload


@csrf_exempt  # token authentication only: no cookie is looked at, so there is nothing to forge
@require_POST
@token_required("catalog.add_image")
def upload_images(request: HttpRequest) -> JsonResponse:
    """Multipart ``images`` (one or more files) and optional ``landmark``; 201 with what was registered."""
    files = request.FILES.getlist("images") or request.FILES.getlist("image")
    if not files:
        return JsonResponse({"error": "send the photos as multipart file fields named 'images'"}, status=400)
    landmark = request.POST.get("landmark", "")
    refusal = landmark_refusal(request.user, landmark)
    if refusal is not None:
        return JsonResponse({"error": refusal}, status=403)
    readable: list[tuple[str, bytes]] = []
    errors: list[tuple[str, str]] = []
    too_large = False
    for upload in files:
        try:
            readable.append((upload.name or "upload", read_upload(upload)))
        except UploadTooLarge as error:
            too_large = True
            errors.append((upload.name or "upload", str(error)))
        except ImageLoadError as error:
            errors.append((upload.name or "upload", str(error)))
    images, failed = services.upload_images(readable, landmark_name=landmark)
    errors.extend(failed)
    payload = {
        "images": [
            {"id": image.pk, "status": image.status, "page_url": image.get_absolute_url()} for image in images
        ],
        "errors": [{"name": name, "error": message} for name, message in errors],
    }
    status = 201 if images else (413 if too_large and len(errors) == 1 else 400)
    return JsonResponse(payload, status=status)
