"""The search page and the JSON search API; both call search_by_photo."""

from __future__ import annotations

import io
import logging
from typing import Any

import numpy as np
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from PIL import Image as PILImage

from retrieval_core.imaging import ImageLoadError, load_image
from retrieval_core.rerank.visualize import draw_matches
from webapp.catalog.models import Image, Landmark
from webapp.media import MediaUnavailable, photo_bytes
from webapp.reranking.selectors import query_evidence
from webapp.search.api import search_from_image, search_upload
from webapp.search.params import FILTER_FIELDS

logger = logging.getLogger(__name__)


def _run_search(request: HttpRequest) -> tuple[dict[str, object], int]:
    """The uploaded photo searched with the request's parameters (``webapp.search.api``)."""
    return search_upload(request)


@require_GET
def matches_image(request: HttpRequest, query_id: str, image_id: int) -> HttpResponse:
    """PNG of the query and a result side by side, lines between their verified SIFT matches."""
    evidence = query_evidence(query_id, image_id)
    image = Image.objects.filter(pk=image_id).first()
    if evidence is None or image is None:
        raise Http404("no match evidence for this query and image")
    query, points = evidence
    try:
        query_pixels = np.asarray(load_image(photo_bytes(query.file)))
        result_pixels = np.asarray(load_image(photo_bytes(image.file)))
    except ImageLoadError as error:
        raise Http404(f"a photo of this match is gone: {error}") from None
    except MediaUnavailable as error:
        logger.error("match drawing: %s", error)
        message = "The photo store is not reachable right now."
        return HttpResponse(message, status=503, content_type="text/plain")
    drawing = draw_matches(query_pixels, result_pixels, np.array(points))
    buffer = io.BytesIO()
    PILImage.fromarray(drawing).save(buffer, format="PNG")
    return HttpResponse(buffer.getvalue(), content_type="image/png")


@csrf_exempt
@require_POST
def search_api(request: HttpRequest) -> JsonResponse:
    payload, status = _run_search(request)
    return JsonResponse(payload, status=status)


def verified_matches(payload: dict[str, Any]) -> dict[str, int] | None:
    """``{count, best}`` of the shown results with at least the verified inliers (None: none shown), so the
    page never says "not in the collection" while it shows a verified match of the photo."""
    floor = payload["rerank"].get("min_inliers") or 0
    inliers = [hit["inliers"] for hit in payload["results"] if hit["inliers"] is not None]
    verified = [n for n in inliers if floor and n >= floor]
    return {"count": len(verified), "best": max(verified)} if verified else None


@require_http_methods(["GET", "POST"])
def search_page(request: HttpRequest) -> HttpResponse:
    context: dict[str, object] = {}
    status = 200
    if request.method == "POST":
        payload, status = _run_search(request)
        context["error" if status != 200 else "response"] = payload.get("error", payload)
    elif request.GET.get("similar"):  # "More like this" from an image page
        try:
            image_id = int(request.GET["similar"])
        except ValueError:
            payload, status = {"error": "similar must be an image id"}, 400
        else:
            payload, status = search_from_image(image_id, request.GET)
        context["error" if status != 200 else "response"] = payload.get("error", payload)
    response = context.get("response")
    if isinstance(response, dict):
        context["verified"] = verified_matches(response)
    context["landmarks"] = Landmark.objects.order_by("name").values("pk", "name")
    context["form"] = {name: request.POST.get(name) or request.GET.get(name) or "" for name in FILTER_FIELDS}
    return render(request, "search/search.html", context, status=status)
