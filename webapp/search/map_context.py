"""The search page's map context: where the collection's photos were taken, as JSON the page's script
fetches once and draws under the results (``static/search/search.js``). A page resource, not part of the
public API: it answers whoever may open the search page, and browsers keep it for a while."""

from __future__ import annotations

from django.http import HttpRequest, JsonResponse
from django.utils.cache import patch_cache_control
from django.views.decorators.http import require_GET

from webapp.catalog.photo_positions import collection_positions

MAX_AGE_S = 60  # a fresh import shows on the map within a minute


@require_GET
def collection_positions_json(request: HttpRequest) -> JsonResponse:
    response = JsonResponse(collection_positions().as_dict())
    patch_cache_control(response, max_age=MAX_AGE_S)
    return response
