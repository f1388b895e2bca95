"""Search by photo: decode, embed, nearest neighbours in Milvus, join the catalogue."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from django.conf import settings

from webapp.catalog.models import Image
from webapp.catalog.selectors import images_by_ids
from webapp.catalog.uploads import check_upload_size
from webapp.embeddings.services import get_active_version, get_extractor, get_store


@dataclass(frozen=True)
class SearchHit:
    rank: int
    image: Image
    score: float


@dataclass(frozen=True)
class SearchResponse:
    hits: list[SearchHit]
    model_version: str
    query_size: tuple[int, int]
    timings_ms: dict[str, float] = field(default_factory=dict)

    def as_dict(self) -> dict[str, object]:
        return {
            "model_version": self.model_version,
            "query": {"width": self.query_size[0], "height": self.query_size[1]},
            "timings_ms": self.timings_ms,
            "results": [
                {
                    "rank": hit.rank,
                    "image_id": hit.image.pk,
                    "score": round(hit.score, 6),
                    "landmark": None
                    if hit.image.landmark is None
                    else {"id": hit.image.landmark.pk, "name": hit.image.landmark.name},
                    "image_url": hit.image.file.url,
                    "thumbnail_url": hit.image.thumbnail_url,
                    "page_url": hit.image.get_absolute_url(),
                }
                for hit in self.hits
            ],
        }


def search_by_photo(content: bytes, *, k: int | None = None) -> SearchResponse:
    """Rank collection images by similarity to the photo; raises ImageLoadError for bad input."""
    k = k or settings.SEARCH_TOP_K
    check_upload_size(len(content), "the photo")
    timings: dict[str, float] = {}
    started = time.perf_counter()
    version = get_active_version()
    extractor = get_extractor(version.config)
    image = extractor.load(content, max_pixels=settings.IMAGE_MAX_PIXELS)  # decoded as at indexing
    timings["decode"] = _elapsed_ms(started)
    mark = time.perf_counter()
    query = extractor.extract([image])
    timings["embed"] = _elapsed_ms(mark)
    mark = time.perf_counter()
    vector_hits = get_store(version).search(query, k=k)[0]
    timings["ann"] = _elapsed_ms(mark)
    mark = time.perf_counter()
    catalogue = images_by_ids([hit.image_id for hit in vector_hits])
    # An image deleted from the catalogue but not yet from Milvus is skipped, not shown broken.
    hits = [
        SearchHit(rank=rank, image=catalogue[hit.image_id], score=hit.score)
        for rank, hit in enumerate((h for h in vector_hits if h.image_id in catalogue), start=1)
    ]
    timings["catalogue"] = _elapsed_ms(mark)
    timings["total"] = _elapsed_ms(started)
    return SearchResponse(
        hits=hits, model_version=version.name, query_size=image.size, timings_ms=timings
    )


def _elapsed_ms(since: float) -> float:
    return round(1000 * (time.perf_counter() - since), 2)
