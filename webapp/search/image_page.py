"""The page of one image, opened from a search result: with ``?query=`` it shows the query's inliers
(the geometric evidence the re-ranking kept), so it lives above the catalogue and the re-ranking."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, render
from django.views.decorators.http import require_GET

from webapp.catalog.models import Image
from webapp.reranking.selectors import query_evidence


@require_GET
def image_detail(request: HttpRequest, pk: int) -> HttpResponse:
    image = get_object_or_404(Image.objects.select_related("landmark", "exif"), pk=pk)
    context: dict[str, object] = {"image": image}
    evidence = query_evidence(request.GET.get("query"), image.pk)
    if evidence is not None:
        context["query"], points = evidence
        context["inliers"] = len(points)
    return render(request, "search/image_detail.html", context)
