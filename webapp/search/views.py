"""The search page and the match drawing; the page searches through the same services and schemas as the
JSON API (``webapp.api``), so a search answers the same on both."""

from __future__ import annotations

import io
import logging
from collections.abc import Callable
from typing import Any

import numpy as np
from django.http import Http404, HttpRequest, HttpResponse, QueryDict
from django.shortcuts import render
from django.views.decorators.http import require_GET, require_http_methods
from PIL import Image as PILImage
from pydantic import ValidationError

from retrieval_core.imaging import ImageLoadError, load_image
from retrieval_core.rerank.visualize import draw_matches
from webapp.catalog.models import Image, Landmark
from webapp.catalog.uploads import read_upload
from webapp.media import MediaUnavailable, photo_bytes
from webapp.reranking.selectors import query_evidence
from webapp.search.errors import failure
from webapp.search.schemas import FILTER_FIELDS, SearchParams
from webapp.search.services import SearchResponse, search_photo, similar_to
from webapp.validation import first_problem

logger = logging.getLogger(__name__)

Answer = tuple[dict[str, Any], int]


def _answer(data: QueryDict, search: Callable[[SearchParams], SearchResponse]) -> Answer:
    """The page's search with the form's parameters: the result, or the API's error message and status."""
    try:
        params = SearchParams.model_validate(data.dict())
    except ValidationError as error:
        return {"error": first_problem(error.errors())}, 400
    try:
        return search(params).result().as_page(), 200
    except Exception as error:
        refused = failure(error)
        if refused is None:
            raise
        return {"error": refused.message}, refused.status


def _search_upload(request: HttpRequest) -> Answer:
    upload = request.FILES.get("image")
    if upload is None:
        return {"error": "send the photo as a multipart file field named 'image'"}, 400
    return _answer(request.POST, lambda params: search_photo(read_upload(upload), params))


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
        payload, status = _search_upload(request)
        context["error" if status != 200 else "response"] = payload.get("error", payload)
    elif request.GET.get("similar"):  # "More like this" from an image page
        try:
            image_id = int(request.GET["similar"])
        except ValueError:
            payload, status = {"error": "similar must be an image id"}, 400
        else:
            payload, status = _answer(request.GET, lambda params: similar_to(image_id, params))
        context["error" if status != 200 else "response"] = payload.get("error", payload)
    response = context.get("response")
    if isinstance(response, dict):
        context["verified"] = verified_matches(response)
    context["landmarks"] = Landmark.objects.order_by("name").values("pk", "name")
    context["form"] = {name: request.POST.get(name) or request.GET.get(name) or "" for name in FILTER_FIELDS}
    return render(request, "search/search.html", context, status=status)
