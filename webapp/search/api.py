"""Search endpoints over the one service (``search_by_photo`` / ``search_similar``): the error mapping every
search shares, batch search, "more like this", and the OpenAPI document of the JSON API."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from functools import lru_cache, partial

from django.conf import settings
from django.core.files.uploadedfile import UploadedFile
from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_POST
from pymilvus.exceptions import MilvusException

from retrieval_core.imaging import ImageLoadError
from retrieval_core.index.milvus_store import OutdatedCollectionError
from retrieval_core.index.vector_index import CollectionMissingError
from webapp import throttling
from webapp.catalog.models import Image
from webapp.catalog.uploads import UploadTooLarge, read_upload
from webapp.media import MediaUnavailable
from webapp.reranking.scoring import RerankUnavailable
from webapp.search.openapi import OPENAPI
from webapp.search.params import BadParameter, SearchParams, parse_search_params
from webapp.search.services import SearchResponse, search_by_photo, search_similar

logger = logging.getLogger(__name__)

Payload = tuple[dict[str, object], int]


def run_search(call: Callable[[], SearchResponse]) -> Payload:
    """Run one search and map what can go wrong to a status with a message (never a 500)."""
    try:
        return call().as_dict(), 200
    except BadParameter as error:
        return {"error": str(error)}, 400
    except UploadTooLarge as error:
        return {"error": str(error)}, 413
    except ImageLoadError as error:
        return {"error": str(error)}, 400
    except (RerankUnavailable, OutdatedCollectionError) as error:
        return {"error": str(error)}, 409
    except CollectionMissingError as error:
        logger.error("search index missing: %s", error)
        message = "The search index of the active model does not exist yet: import or upload photos first."
        return {"error": message}, 503
    except MediaUnavailable as error:
        logger.error("photo store unreachable: %s", error)
        return {"error": "The photo store is not reachable right now; please try again in a moment."}, 503
    except MilvusException as error:
        logger.error("search index unreachable: %s", error)
        return {"error": "The search index is not reachable right now; please try again in a moment."}, 503
    except ConnectionError as error:  # a stored file the search needs (model weights, ...) or its store
        logger.error("search storage unavailable: %s", error)
        message = "A file the search needs cannot be read right now; please try again in a moment."
        return {"error": message}, 503


def search_upload(request: HttpRequest) -> Payload:
    """``POST`` with a file field ``image`` and the search parameters (``webapp.search.params``)."""
    upload = request.FILES.get("image")
    if upload is None:
        return {"error": "send the photo as a multipart file field named 'image'"}, 400
    try:
        params = parse_search_params(request.POST)
    except BadParameter as error:
        return {"error": str(error)}, 400
    return run_search(lambda: _search(read_upload(upload), params))


def search_from_image(image_id: int, data: Mapping[str, str]) -> Payload:
    """More like this: search from collection image ``image_id`` with the parameters in ``data``."""
    try:
        params = parse_search_params(data)
    except BadParameter as error:
        return {"error": str(error)}, 400
    image = Image.objects.select_related("landmark", "exif").filter(pk=image_id).first()
    if image is None:
        return {"error": f"there is no image with id {image_id}"}, 404
    if image.status != Image.Status.INDEXED:
        return {"error": f"image {image_id} is not in the search index ({image.get_status_display()})"}, 409
    return run_search(lambda: search_similar(image, k=params.k, method=params.method, filters=params.filters))


@csrf_exempt
@require_POST
def search_batch_api(request: HttpRequest) -> JsonResponse:
    """Up to ``SEARCH_BATCH_MAX`` photos (file fields ``images``), the same parameters for all; one result
    list (or one error) per photo, in the order sent."""
    uploads = request.FILES.getlist("images")
    limit = settings.SEARCH_BATCH_MAX
    if not uploads:
        return JsonResponse({"error": "send the photos as multipart file fields named 'images'"}, status=400)
    if len(uploads) > limit:
        return JsonResponse({"error": f"at most {limit} images per batch, got {len(uploads)}"}, status=400)
    over_rate = throttling.charge_batch(request, len(uploads))
    if over_rate is not None:
        return over_rate
    try:
        params = parse_search_params(request.POST)
    except BadParameter as error:
        return JsonResponse({"error": str(error)}, status=400)
    searches = []
    for position, upload in enumerate(uploads):
        payload, status = run_search(partial(_search_upload, upload, params))
        if status == 503:  # the index is down or missing: the whole batch fails the same way
            return JsonResponse(payload, status=status)
        ok = status == 200
        searches.append(
            {
                "index": position,
                "name": upload.name or "",
                "status": status,
                "result": payload if ok else None,
                "error": None if ok else payload.get("error"),
            }
        )
    return JsonResponse({"count": len(searches), "searches": searches})


@require_GET
def similar_api(request: HttpRequest, image_id: int) -> JsonResponse:
    payload, status = search_from_image(image_id, request.GET)
    return JsonResponse(payload, status=status)


@require_GET
def openapi_schema(request: HttpRequest) -> JsonResponse:
    """The OpenAPI 3.1 document of the JSON API (hand-written; a contract test checks real responses)."""
    return JsonResponse(openapi_document())


@lru_cache(maxsize=1)
def openapi_document() -> dict[str, object]:
    return OPENAPI


def _search(content: bytes, params: SearchParams) -> SearchResponse:
    return search_by_photo(content, k=params.k, method=params.method, filters=params.filters)


def _search_upload(upload: UploadedFile, params: SearchParams) -> SearchResponse:
    return _search(read_upload(upload), params)
