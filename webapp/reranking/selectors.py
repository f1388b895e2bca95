"""Reads of re-ranking state used by pages."""

from __future__ import annotations

import uuid

from webapp.reranking.models import SearchQuery


def query_evidence(query_id: str | None, image_id: int) -> tuple[SearchQuery, list[list[float]]] | None:
    """The kept query and its inlier pairs with ``image_id``, or None (unknown, malformed, no evidence)."""
    if not query_id:
        return None
    try:
        query = SearchQuery.objects.get(pk=uuid.UUID(str(query_id)))
    except (ValueError, SearchQuery.DoesNotExist):
        return None
    points = query.evidence.get(str(image_id)) or []
    return (query, points) if points else None
