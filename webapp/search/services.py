"""Search by photo: the served pipeline (`webapp.search.pipeline`), then the catalogue joined to its hits."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import cast

import numpy as np
from django.conf import settings
from django.core.files.base import ContentFile
from PIL import Image as PILImage

from retrieval_core.index.filters import SearchFilters
from retrieval_core.rerank.fusion import RerankedHit
from retrieval_core.rerank.scorer import RerankMethod
from retrieval_core.search.decode import decode
from retrieval_core.search.geolocation import (
    Location,
    Unlocated,
    estimate_location,
    geo_candidates,
)
from retrieval_core.search.pipeline import elapsed_ms
from retrieval_core.search.recognition import Recognition
from retrieval_core.search.served import SERVED
from webapp.catalog.exif import read_exif
from webapp.catalog.models import Image, ImageExif, Landmark
from webapp.catalog.selectors import images_by_ids
from webapp.catalog.uploads import check_upload_size
from webapp.embeddings.services import decode_policy, get_active_version
from webapp.media import photo_bytes
from webapp.metrics import observe_search
from webapp.reranking.models import SearchQuery
from webapp.search.errors import BadParameter, Failure, NotInIndex, UnknownImage, failure
from webapp.search.pipeline import recognition_config, served_pipeline
from webapp.search.schemas import (
    AppliedFilters,
    Hit,
    LandmarkRef,
    LocationOut,
    Position,
    Prediction,
    QueryInfo,
    RerankInfo,
    SearchParams,
    SearchResult,
)

logger = logging.getLogger(__name__)

GEOLOCATION = SERVED.geolocation
"""The estimator as served (calibrated on validation queries; ``retrieval_core.search.served``)."""

__all__ = [
    "BatchEntry",
    "SearchHit",
    "SearchResponse",
    "keep_query_photo",
    "locate",
    "match_points",
    "recognition_config",
    "search_batch",
    "search_by_photo",
    "search_filters",
    "search_photo",
    "search_similar",
    "similar_to",
]


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
    prediction: Recognition | None = None
    landmark_names: dict[int, str] = field(default_factory=dict)
    query_position: tuple[float, float] | None = None
    query_image_id: int | None = None
    filters: SearchFilters | None = None
    location: Location | Unlocated = field(default_factory=lambda: Unlocated("not estimated"))
    min_inliers: int = 0
    """Inliers from which a result counts as a verified match (the fusion's floor)."""
    """Where the photo was taken, estimated from its matches' positions, or why not."""

    def page_url(self, hit: SearchHit) -> str:
        """The result's page; with the kept query when there is match evidence to draw."""
        url = hit.image.get_absolute_url()
        return f"{url}?query={self.query_id}" if self.query_id and hit.inliers else url

    def result(self) -> SearchResult:
        """The answer as the API sends it and the page shows it (``webapp.search.schemas``)."""
        location = self.location
        return SearchResult(
            model_version=self.model_version,
            query=QueryInfo(
                width=self.query_size[0],
                height=self.query_size[1],
                id=self.query_id,
                image_id=self.query_image_id,
                position=Position.of(self.query_position),
            ),
            filters=AppliedFilters.of(self.filters),
            prediction=Prediction.of(
                self.prediction or Recognition(None, 0.0, False),
                self.landmark_names,
                recognition_config().threshold,
            ),
            location=LocationOut.of(location) if isinstance(location, Location) else None,
            location_reason=location.reason if isinstance(location, Unlocated) else None,
            rerank=RerankInfo(
                method=cast(RerankMethod, self.rerank_method),
                weight_global=self.weight_global,
                min_inliers=self.min_inliers,
            ),
            timings_ms=self.timings_ms,
            results=[
                Hit(
                    rank=hit.rank,
                    image_id=hit.image.pk,
                    score=round(hit.score, 6),
                    global_score=round(hit.global_score, 6),
                    local_score=None if hit.local_score is None else round(hit.local_score, 6),
                    global_rank=hit.global_rank,
                    inliers=hit.inliers,
                    landmark=None
                    if hit.image.landmark is None
                    else LandmarkRef(id=hit.image.landmark.pk, name=hit.image.landmark.name),
                    image_url=hit.image.file.url,
                    thumbnail_url=hit.image.thumbnail_url,
                    page_url=self.page_url(hit),
                    position=Position.of(_image_position(hit.image)),
                )
                for hit in self.hits
            ],
        )


def search_by_photo(
    content: bytes,
    *,
    k: int | None = None,
    method: RerankMethod | None = None,
    keep_query: bool = True,
    exclude_ids: Sequence[int] = (),
    filters: SearchFilters | None = None,
    query_image: Image | None = None,
) -> SearchResponse:
    """Rank collection images by similarity to the photo.

    Raises ``ImageLoadError`` for bad input, ``RerankUnavailable`` when ``method`` has no data to run on,
    ``CollectionMissingError`` when the active model's collection does not exist. The global
    top-``RERANK_TOP_K`` is re-ranked with ``method`` (default ``RERANK_METHOD``); the best ``k`` are
    returned with their fused, global and local scores. With SIFT evidence and ``keep_query``, the query is
    kept so result pages can draw the matches. ``filters`` (landmark, capture date, radius) are applied
    by Milvus before the top-k; the response also names the predicted landmark (the pipeline's one
    recognition over the re-ranked hits, with the labels the index holds: a relabel re-labels the index at
    once). ``query_image``: the collection image searched from ("more like this"), excluded from its own
    results. The photo is decoded once, here, with the served decode policy, so bad input is refused
    before any service is contacted; the pipeline and the EXIF position read the decoded photo.
    """
    k = k or settings.SEARCH_TOP_K
    check_upload_size(len(content), "the photo")
    started = time.perf_counter()
    image = decode(content, decode_policy())
    decoded_ms = elapsed_ms(started)
    version = get_active_version()
    pipeline = served_pipeline(method or settings.RERANK_METHOD, version=version)
    exclude = [*exclude_ids, *([query_image.pk] if query_image is not None else [])]
    result = pipeline.search(image, k=k, exclude_ids=exclude, filters=filters)
    result.timings_ms["decode"] = decoded_ms
    mark = time.perf_counter()
    looked_at = max(k, pipeline.config.recognition.top_n, GEOLOCATION.top_n) + 20
    catalogue = images_by_ids([_pk(hit) for hit in result.hits[:looked_at]])
    # An image deleted from the catalogue but not yet from Milvus is skipped, not shown broken.
    ranked = [
        hit
        for hit in result.hits
        if _pk(hit) in catalogue and catalogue[_pk(hit)].status != Image.Status.EXCLUDED
    ]
    present = ranked[:k]
    prediction = result.recognition  # named once, by the pipeline, from the labels the index holds
    names = {img.landmark.pk: img.landmark.name for img in catalogue.values() if img.landmark is not None}
    location = locate(ranked, catalogue, result.method)
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
    observe_search(timings)
    return SearchResponse(
        hits=hits,
        model_version=version.name,
        query_size=image.size,
        rerank_method=result.method,
        weight_global=result.weight_global,
        query_id=query_id,
        timings_ms=timings,
        prediction=prediction,
        landmark_names=names,
        query_position=_image_position(query_image) if query_image is not None else _photo_position(image),
        query_image_id=None if query_image is None else query_image.pk,
        filters=filters,
        location=location,
        min_inliers=pipeline.fusion.min_inliers,
    )


def locate(
    ranked: Sequence[RerankedHit], catalogue: Mapping[int, Image], method: str
) -> Location | Unlocated:
    """Where the photo was taken, from the catalogue positions of its re-ranked matches (``labels.csv`` or
    EXIF GPS, both stored as the image's EXIF position); Unlocated with the reason otherwise."""
    head = ranked[: GEOLOCATION.top_n]
    positions = {
        pk: position for pk in map(_pk, head) if (position := _image_position(catalogue[pk])) is not None
    }
    if not positions:
        has_gps = ImageExif.objects.filter(latitude__isnull=False, longitude__isnull=False).exists()
        return Unlocated(
            "none of the best matches has a known position"
            if has_gps
            else "the collection has no photo positions (no GPS in EXIF, no latitude,longitude in labels.csv)"
        )
    scored = [
        (_pk(hit), hit.global_score, None if hit.evidence is None else hit.evidence.inliers) for hit in head
    ]
    answer = estimate_location(geo_candidates(scored, positions), GEOLOCATION)
    if isinstance(answer, Location) and answer.fallback is not None:
        logger.info("location is one match's position: %s (re-rank %s)", answer.fallback, method)
    return answer


def search_similar(
    image: Image,
    *,
    k: int | None = None,
    method: RerankMethod | None = None,
    filters: SearchFilters | None = None,
) -> SearchResponse:
    """ "More like this": search from a collection image's own file through the same pipeline (so SIFT
    re-ranking and the match drawings work as for an upload), the image itself excluded."""
    return search_by_photo(photo_bytes(image.file), k=k, method=method, filters=filters, query_image=image)


def search_filters(params: SearchParams) -> SearchFilters:
    """The parameters' filters, once the landmark they name is known to exist (BadParameter otherwise)."""
    if params.landmark is not None and not Landmark.objects.filter(pk=params.landmark).exists():
        raise BadParameter(f"there is no landmark with id {params.landmark}")
    return params.filters()


def search_photo(content: bytes, params: SearchParams) -> SearchResponse:
    """Search by an uploaded photo with the API's (or the page's) parameters."""
    return search_by_photo(content, k=params.k, method=params.rerank, filters=search_filters(params))


def similar_to(image_id: int, params: SearchParams) -> SearchResponse:
    """"More like this" from collection image ``image_id``: UnknownImage if there is none, NotInIndex if
    it is not searchable (yet); the parameters are checked first, as for any search."""
    filters = search_filters(params)
    image = Image.objects.select_related("landmark", "exif").filter(pk=image_id).first()
    if image is None:
        raise UnknownImage(f"there is no image with id {image_id}")
    if image.status != Image.Status.INDEXED:
        raise NotInIndex(f"image {image_id} is not in the search index ({image.get_status_display()})")
    return search_similar(image, k=params.k, method=params.rerank, filters=filters)


@dataclass(frozen=True)
class BatchEntry:
    """One photo of a batch: its answer, or why it got none."""

    name: str
    response: SearchResponse | None = None
    failure: Failure | None = None


def search_batch(photos: Sequence[tuple[str, Callable[[], bytes]]], params: SearchParams) -> list[BatchEntry]:
    """Each ``(name, read)`` photo searched with the same parameters, in order. A photo the search cannot
    take (unreadable, too large) gets its failure; a bad parameter refuses the whole batch, and so does an
    unavailable service (503: the next photos would fail the same way)."""
    search_filters(params)
    entries = []
    for name, read in photos:
        try:
            entries.append(BatchEntry(name, response=search_photo(read(), params)))
        except Exception as error:
            refused = failure(error)
            if refused is None or refused.status == 503:
                raise
            entries.append(BatchEntry(name, failure=refused))
    return entries


def _image_position(image: Image) -> tuple[float, float] | None:
    exif = getattr(image, "exif", None)
    if exif is None or exif.latitude is None or exif.longitude is None:
        return None
    return (exif.latitude, exif.longitude)


def _photo_position(photo: PILImage.Image) -> tuple[float, float] | None:
    """The query photo's EXIF GPS, from the decoded photo (decoding keeps the EXIF block)."""
    try:
        exif = read_exif(photo)
    except Exception:
        return None
    if exif.latitude is None or exif.longitude is None:
        return None
    return (exif.latitude, exif.longitude)


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
