"""Search by photo, a batch of photos, and "more like this": thin operations over ``webapp.search.services``.

Each is open to anyone and guarded by the search throttle (``webapp.throttling``: 429 or 503 with
``Retry-After``, answered before the body is read); a batch counts as its N photos.
"""

from functools import partial
from typing import Literal

from django.conf import settings
from django.http import HttpRequest
from ninja import Field, File, Form, Query, Router, Schema, UploadedFile
from ninja.throttling import BaseThrottle

from webapp import throttling
from webapp.api.errors import Error, refuse_search
from webapp.catalog.uploads import read_upload
from webapp.search.errors import BadParameter
from webapp.search.schemas import SearchParams, SearchResult
from webapp.search.services import search_batch, search_photo, similar_to
from webapp.validation import DatabaseId

router = Router(tags=["search"])

_REFUSED = {429: Error, 503: Error}


class BatchSearch(Schema):
    index: int = Field(ge=0, description="position of the photo in the request")
    name: str
    status: Literal[200, 400, 409, 413]
    result: SearchResult | None
    error: str | None


class BatchResult(Schema):
    count: int
    searches: list[BatchSearch]


class BatchPhotos(BaseThrottle):
    """A batch counts as its N photos against the search rate: the middleware charged one before the body
    was read, this charges the rest once N is known (before the parameters are looked at, so a batch with a
    bad parameter is counted too). A batch with no photo, or too many, is the operation's to refuse."""

    def allow_request(self, request: HttpRequest) -> bool:
        photos = len(request.FILES.getlist("images"))
        if not 1 < photos <= settings.SEARCH_BATCH_MAX:
            return True
        refusal = throttling.check_rate(throttling.client_key(request), cost=photos - 1)
        if refusal is not None:
            refuse_search(request, refusal)
        return refusal is None

    def wait(self) -> float | None:
        return None  # the refusal's Retry-After is set by the exception handler


@router.post(
    "/search/",
    url_name="search",
    summary="Search by photo",
    response={200: SearchResult, 400: Error, 409: Error, 413: Error, **_REFUSED},
    exclude_unset=True,
)
def search(request: HttpRequest, image: File[UploadedFile], params: Form[SearchParams]) -> SearchResult:
    """Ranked matches with their evidence, the predicted landmark and where the photo was taken. Filters
    are applied by Milvus before the top-k. 409: the asked re-rank method has no data, or the filters need
    the collection rebuilt; 413: a photo over UPLOAD_MAX_BYTES; 503: the index is unreachable or missing."""
    return search_photo(read_upload(image), params).result()


@router.post(
    "/search/batch/",
    url_name="search-batch",
    summary="Search several photos at once (at most SEARCH_BATCH_MAX)",
    response={200: BatchResult, 400: Error, **_REFUSED},
    throttle=[BatchPhotos()],
    exclude_unset=True,
)
def batch(request: HttpRequest, images: File[list[UploadedFile]], params: Form[SearchParams]) -> BatchResult:
    """The same parameters for every photo; one result (or one error) per photo, in the order sent."""
    limit = settings.SEARCH_BATCH_MAX
    if len(images) > limit:
        raise BadParameter(f"at most {limit} images per batch, got {len(images)}")
    photos = [(upload.name or "", partial(read_upload, upload)) for upload in images]
    searches = [
        BatchSearch(
            index=index,
            name=entry.name,
            status=200 if entry.failure is None else entry.failure.status,  # type: ignore[arg-type]
            result=None if entry.response is None else entry.response.result(),
            error=None if entry.failure is None else entry.failure.message,
        )
        for index, entry in enumerate(search_batch(photos, params))
    ]
    return BatchResult(count=len(searches), searches=searches)


@router.get(
    "/images/{int:image_id}/similar/",
    url_name="similar",
    summary="More like this: search from a collection image, itself excluded",
    response={200: SearchResult, 400: Error, 404: Error, 409: Error, **_REFUSED},
    exclude_unset=True,
)
def similar(request: HttpRequest, image_id: DatabaseId, params: Query[SearchParams]) -> SearchResult:
    """404: no such image; 409: the image is not in the search index (yet)."""
    return similar_to(image_id, params).result()
