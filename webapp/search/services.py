"""Search by photo: the served pipeline (`webapp.search.pipeline`), then the catalogue joined to its hits."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import cast

import numpy as np
from django.conf import settings
from django.core.files.base import ContentFile

from retrieval_core.rerank.fusion import RerankedHit
from retrieval_core.rerank.scorer import RerankMethod
from retrieval_core.search.decode import decode
from retrieval_core.search.pipeline import elapsed_ms
from webapp.catalog.models import Image
from webapp.catalog.selectors import images_by_ids
from webapp.catalog.uploads import check_upload_size
from webapp.embeddings.services import decode_policy, get_active_version
from webapp.reranking.models import SearchQuery
from webapp.search.pipeline import served_pipeline

__all__ = ["SearchHit", "SearchResponse", "keep_query_photo", "match_points", "search_by_photo"]


@dataclass(frozen=True)
class SearchHit:
    rank: int
    image: Image
    score: float
    global_score: float
    local_score: float | None
    global_rank: int
    inliers: int | None


@dataclass(frozen=True)
class SearchResponse:
    hits: list[SearchHit]
    model_version: str
    query_size: tuple[int, int]
    rerank_method: str
    weight_global: float
    query_id: str | None = None
    timings_ms: dict[str, float] = field(default_factory=dict)

    def page_url(self, hit: SearchHit) -> str:
        url = hit.image.get_absolute_url()
        return f"{url}?query={self.query_id}" if self.query_id and hit.inliers else url

    def as_dict(self) -> dict[str, object]:
        return {
            "model_version": self.model_version,
            "query": {"width": self.query_size[0], "height": self.query_size[1], "id": self.query_id},
            "rerank": {"method": self.rerank_method, "weight_global": self.weight_global},
            "timings_ms": self.timings_ms,
            "results": [
                {
                    "rank": hit.rank,
                    "image_id": hit.image.pk,
                    "score": round(hit.score, 6),
                    "global_score": round(hit.global_score, 6),
                    "local_score": None if hit.local_score is None else round(hit.local_score, 6),
                    "global_rank": hit.global_rank,
                    "inliers": hit.inliers,
                    "landmark": None
                    if hit.image.landmark is None
                    else {"id": hit.image.landmark.pk, "name": hit.image.landmark.name},
                    "image_url": hit.image.file.url,
                    "thumbnail_url": hit.image.thumbnail_url,
                    "page_url": self.page_url(hit),
                }
                for hit in self.hits
            ],
        }


def search_by_photo(
    content: bytes,
    *,
    k: int | None = None,
    method: RerankMethod | None = None,
    keep_query: bool = True,
    exclude_ids: Sequence[int] = (),
) -> SearchResponse:
    """Rank collection images by similarity to the photo.

    Raises ``ImageLoadError`` for bad input, ``RerankUnavailable`` when ``method`` has no data to run on,
    ``CollectionMissingError`` when the active model's collection does not exist. The global
    top-``RERANK_TOP_K`` is re-ranked with ``method`` (default ``RERANK_METHOD``); the best ``k`` are
    returned with their fused, global and local scores. With SIFT evidence and ``keep_query``, the query is
    kept so result pages can draw the matches.
    """
    k = k or settings.SEARCH_TOP_K
    check_upload_size(len(content), "the photo")
    started = time.perf_counter()
    image = decode(content, decode_policy())  # bad input is refused before any service is contacted
    decoded_ms = elapsed_ms(started)
    version = get_active_version()
    pipeline = served_pipeline(method or settings.RERANK_METHOD, version=version)
    result = pipeline.search(image, k=k, exclude_ids=exclude_ids)
    result.timings_ms["decode"] = decoded_ms
    mark = time.perf_counter()
    catalogue = images_by_ids([_pk(hit) for hit in result.hits[: k + 20]])
    # An image deleted from the catalogue but not yet from Milvus is skipped, not shown broken.
    present = [
        hit
        for hit in result.hits
        if _pk(hit) in catalogue and catalogue[_pk(hit)].status != Image.Status.EXCLUDED
    ][:k]
    hits = [
        SearchHit(
            rank=rank,
            image=catalogue[_pk(hit)],
            score=hit.fused_score,
            global_score=hit.global_score,
            local_score=hit.local_score,
            global_rank=hit.global_rank + 1,
            inliers=None if hit.evidence is None else hit.evidence.inliers,
        )
        for rank, hit in enumerate(present, start=1)
    ]
    timings = dict(result.timings_ms)
    timings["catalogue"] = elapsed_ms(mark)
    query_id = None
    evidence = {str(hit.image_id): match_points(hit) for hit in present if hit.evidence}
    if keep_query and any(evidence.values()):
        query_id = str(keep_query_photo(content, evidence).id)
    timings["total"] = elapsed_ms(started)
    return SearchResponse(
        hits=hits,
        model_version=version.name,
        query_size=image.size,
        rerank_method=result.method,
        weight_global=result.weight_global,
        query_id=query_id,
        timings_ms=timings,
    )


def match_points(hit: RerankedHit) -> list[list[float]]:
    """Inlier pairs ``[xq, yq, xr, yr]`` in original pixels, for drawing (empty without SIFT evidence)."""
    if hit.evidence is None:
        return []
    return np.round(hit.evidence.points, 1).tolist()


def keep_query_photo(content: bytes, evidence: dict[str, list[list[float]]]) -> SearchQuery:
    """Keep a query photo and its match evidence for the result pages (a periodic task forgets them)."""
    query = SearchQuery(evidence=evidence)
    query.file.save(f"{query.id}.jpg", ContentFile(content), save=True)
    return query


def _pk(hit: RerankedHit) -> int:
    return cast(int, hit.image_id)
