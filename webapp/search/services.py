"""Search by photo: decode, embed, nearest neighbours in Milvus, re-rank with local evidence, join the
catalogue."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from django.conf import settings

from webapp.catalog.models import Image
from webapp.catalog.selectors import images_by_ids
from webapp.catalog.uploads import check_upload_size
from webapp.embeddings.services import get_active_version, get_extractor, get_store
from webapp.reranking import services as reranking


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
    content: bytes, *, k: int | None = None, method: str | None = None, keep_query: bool = True
) -> SearchResponse:
    """Rank collection images by similarity to the photo; raises ImageLoadError for bad input.

    The global top-``RERANK_TOP_K`` from Milvus is re-ranked with ``method`` (default ``RERANK_METHOD``)
    and the best ``k`` are returned with their fused, global and local scores. With SIFT evidence and
    ``keep_query``, the query is kept so result pages can draw the matches.
    """
    k = k or settings.SEARCH_TOP_K
    method = method or settings.RERANK_METHOD
    check_upload_size(len(content), "the photo")
    timings: dict[str, float] = {}
    started = time.perf_counter()
    version = get_active_version()
    extractor = get_extractor(version.config)
    image = extractor.load(content, max_pixels=settings.IMAGE_MAX_PIXELS)  # decoded as at indexing
    timings["decode"] = reranking.elapsed_ms(started)
    mark = time.perf_counter()
    patch_top_n = settings.PATCHES_TOP_N if method == "patches" else 0
    vectors, patches = extractor.extract_with_patches([image], patch_top_n)
    timings["embed"] = reranking.elapsed_ms(mark)
    mark = time.perf_counter()
    depth = k if method == "none" else max(k, settings.RERANK_TOP_K)
    candidates = get_store(version).search(vectors, k=depth)[0]
    timings["ann"] = reranking.elapsed_ms(mark)
    mark = time.perf_counter()
    outcome = reranking.rerank(method, image, patches[0] if patches else None, candidates, version)
    timings["rerank"] = reranking.elapsed_ms(mark)
    timings.update({f"rerank_{stage}": ms for stage, ms in outcome.timings_ms.items()})
    mark = time.perf_counter()
    catalogue = images_by_ids([hit.image_id for hit in outcome.hits[: k + 20]])
    # An image deleted from the catalogue but not yet from Milvus is skipped, not shown broken.
    present = [
        hit
        for hit in outcome.hits
        if hit.image_id in catalogue and catalogue[hit.image_id].status != Image.Status.EXCLUDED
    ][:k]
    hits = [
        SearchHit(
            rank=rank,
            image=catalogue[hit.image_id],
            score=hit.fused_score,
            global_score=hit.global_score,
            local_score=hit.local_score,
            global_rank=hit.global_rank + 1,
            inliers=None if hit.evidence is None else hit.evidence.inliers,
        )
        for rank, hit in enumerate(present, start=1)
    ]
    timings["catalogue"] = reranking.elapsed_ms(mark)
    query_id = None
    evidence = {str(hit.image_id): reranking.match_points(hit) for hit in present if hit.evidence}
    if keep_query and any(evidence.values()):
        query_id = str(reranking.keep_query(content, evidence).id)
    timings["total"] = reranking.elapsed_ms(started)
    return SearchResponse(
        hits=hits,
        model_version=version.name,
        query_size=image.size,
        rerank_method=outcome.method,
        weight_global=outcome.weight_global,
        query_id=query_id,
        timings_ms=timings,
    )
