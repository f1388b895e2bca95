"""Collection reads for pages: the indexing progress the collection page polls."""

from __future__ import annotations

from django.http import HttpRequest, JsonResponse
from django.views.decorators.http import require_GET

from webapp.catalog import selectors


@require_GET
def progress(request: HttpRequest) -> JsonResponse:
    raw = request.GET.get("ids", "")
    try:
        ids = [int(part) for part in raw.split(",") if part.strip()] or None
    except ValueError:
        return JsonResponse({"error": "ids must be a comma-separated list of integers"}, status=400)
    return JsonResponse(selectors.indexing_progress(ids).as_dict())
