"""The search page and the JSON search API; both call search_by_photo."""

from __future__ import annotations

import io
import logging

import numpy as np
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from PIL import Image as PILImage
from pymilvus.exceptions import MilvusException

from retrieval_core.imaging import ImageLoadError, load_image
from retrieval_core.index.protocol import CollectionMissingError
from retrieval_core.rerank.scorer import RERANK_METHODS
from retrieval_core.rerank.visualize import draw_matches
from webapp.catalog.models import Image
from webapp.catalog.uploads import UploadTooLarge, read_upload
from webapp.reranking.scoring import RerankUnavailable
from webapp.reranking.selectors import query_evidence
from webapp.search.services import search_by_photo

logger = logging.getLogger(__name__)


def _run_search(request: HttpRequest) -> tuple[dict[str, object], int]:
    upload = request.FILES.get("image")
    if upload is None:
        return {"error": "send the photo as a multipart file field named 'image'"}, 400
    try:
        k = int(request.POST.get("k", 0)) or None
    except ValueError:
        return {"error": "k must be an integer"}, 400
    if k is not None and not 1 <= k <= 100:
        return {"error": "k must be between 1 and 100"}, 400
    method = request.POST.get("rerank") or None
    if method is not None and method not in RERANK_METHODS:
        return {"error": f"rerank must be one of {', '.join(RERANK_METHODS)}"}, 400
    try:
        response = search_by_photo(read_upload(upload), k=k, method=method)
    except UploadTooLarge as error:
        return {"error": str(error)}, 413
    except ImageLoadError as error:
        return {"error": str(error)}, 400
    except RerankUnavailable as error:
        return {"error": str(error)}, 409
    except CollectionMissingError as error:
        logger.error("search index missing: %s", error)
        message = "The search index of the active model does not exist yet: import or upload photos first."
        return {"error": message}, 503
    except (MilvusException, ConnectionError) as error:
        logger.error("search index unreachable: %s", error)
        return {"error": "The search index is not reachable right now; please try again in a moment."}, 503
    return response.as_dict(), 200


@require_GET
def matches_image(request: HttpRequest, query_id: str, image_id: int) -> HttpResponse:
    """PNG of the query and a result side by side, lines between their verified SIFT matches."""
    evidence = query_evidence(query_id, image_id)
    image = Image.objects.filter(pk=image_id).first()
    if evidence is None or image is None:
        raise Http404("no match evidence for this query and image")
    query, points = evidence
    with query.file.open("rb") as query_file, image.file.open("rb") as image_file:
        query_pixels = np.asarray(load_image(query_file.read()))
        result_pixels = np.asarray(load_image(image_file.read()))
    drawing = draw_matches(query_pixels, result_pixels, np.array(points))
    buffer = io.BytesIO()
    PILImage.fromarray(drawing).save(buffer, format="PNG")
    return HttpResponse(buffer.getvalue(), content_type="image/png")


@csrf_exempt
@require_POST
def search_api(request: HttpRequest) -> JsonResponse:
    payload, status = _run_search(request)
    return JsonResponse(payload, status=status)


@require_http_methods(["GET", "POST"])
def search_page(request: HttpRequest) -> HttpResponse:
    context: dict[str, object] = {}
    status = 200
    if request.method == "POST":
        payload, status = _run_search(request)
        context["error" if status != 200 else "response"] = payload.get("error", payload)
    return render(request, "search/search.html", context, status=status)
