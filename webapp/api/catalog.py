"""The collection: its images and landmarks page by page (open to anyone, as the collection page is),
adding photos with an API token, and the indexing progress the collection page polls."""

from datetime import date, datetime
from typing import Annotated, Any

from django.http import HttpRequest
from ninja import Field, File, Query, Router, Schema, Status, UploadedFile
from ninja.pagination import paginate
from ninja.params import functions as params
from pydantic import model_validator

from webapp.api.auth import ApiToken
from webapp.api.errors import ApiRefusal, Error
from webapp.api.pagination import PageNumbers
from webapp.catalog import selectors, services
from webapp.catalog.models import Image
from webapp.catalog.uploads import read_uploads
from webapp.search.schemas import LandmarkRef, Position
from webapp.validation import DatabaseId

router = Router(tags=["collection"])

# A name the catalogue can store (Landmark.name: 255 characters; no control characters, PostgreSQL
# refuses NUL).
LandmarkName = Annotated[
    str,
    params.Form("", max_length=255, pattern=r"^[^\x00-\x1f\x7f]*$", description="the landmark to file under"),
]

ImageStatus = Image.Status


class ImageOut(Schema):
    id: int
    landmark: LandmarkRef | None
    status: str = Field(description="pending, indexed, failed or excluded (removed by a curator)")
    original_name: str
    width: int
    height: int
    format: str
    created_at: datetime = Field(description="when it was added")
    indexed_at: datetime | None
    taken_at: datetime | None = Field(description="EXIF capture time")
    position: Position | None = Field(description="EXIF GPS, or the position given in labels.csv")
    image_url: str
    thumbnail_url: str
    page_url: str

    @staticmethod
    def resolve_landmark(image: Image) -> LandmarkRef | None:
        landmark = image.landmark
        return None if landmark is None else LandmarkRef(id=landmark.pk, name=landmark.name)

    @staticmethod
    def resolve_taken_at(image: Image) -> datetime | None:
        exif = getattr(image, "exif", None)
        return None if exif is None else exif.taken_at

    @staticmethod
    def resolve_position(image: Image) -> Position | None:
        exif = getattr(image, "exif", None)
        if exif is None or exif.latitude is None or exif.longitude is None:
            return None
        return Position(latitude=exif.latitude, longitude=exif.longitude)

    @staticmethod
    def resolve_image_url(image: Image) -> str:
        return image.file.url

    @staticmethod
    def resolve_thumbnail_url(image: Image) -> str:
        return image.thumbnail_url

    @staticmethod
    def resolve_page_url(image: Image) -> str:
        return image.get_absolute_url()


class ImageFilters(Schema):
    landmark: DatabaseId | None = Field(None, description="only images of this landmark id")
    status: ImageStatus | None = None
    taken_after: date | None = Field(None, description="EXIF capture date on or after (UTC)")
    taken_before: date | None = Field(None, description="EXIF capture date on or before (UTC)")
    added_after: date | None = Field(None, description="added on or after (UTC)")
    added_before: date | None = Field(None, description="added on or before (UTC)")


class LandmarkOut(Schema):
    id: int
    name: str
    external_id: str = Field(description="its identifier in the source dataset, if any")
    image_count: int = Field(ge=0)


class UploadedImage(Schema):
    id: int
    status: str
    page_url: str


class UploadProblem(Schema):
    name: str
    error: str


class UploadOut(Schema):
    images: list[UploadedImage] = Field(description="registered (and queued for indexing)")
    errors: list[UploadProblem] = Field(description="the files that were not, and why")


class ProgressQuery(Schema):
    ids: str | None = Field(None, description="comma-separated image ids (default: the whole collection)")

    @model_validator(mode="after")
    def _integers(self) -> "ProgressQuery":
        self.image_ids()
        return self

    def image_ids(self) -> list[int] | None:
        parts = [part.strip() for part in (self.ids or "").split(",") if part.strip()]
        if not all(part.isdigit() and int(part) < 2**63 for part in parts):
            raise ValueError("ids must be a comma-separated list of integers")
        return [int(part) for part in parts] or None


class ProgressOut(Schema):
    total: int = Field(ge=0)
    indexed: int = Field(ge=0)
    pending: int = Field(ge=0)
    failed: int = Field(ge=0)
    local_features: int = Field(ge=0, description="images whose re-ranking features are stored")
    percent: float = Field(ge=0, le=100)


@router.get(
    "/images/",
    url_name="images",
    summary="The collection's images, newest first",
    response={200: list[ImageOut], 400: Error},
)
@paginate(PageNumbers)
def images(request: HttpRequest, filters: Query[ImageFilters]) -> Any:
    return selectors.images_matching(
        landmark_id=filters.landmark,
        status=filters.status,
        taken_after=filters.taken_after,
        taken_before=filters.taken_before,
        added_after=filters.added_after,
        added_before=filters.added_before,
    )


@router.post(
    "/images/",
    url_name="images",
    summary="Add photos to the collection (API token with catalog.add_image)",
    auth=ApiToken("catalog.add_image"),
    response={201: UploadOut, 400: UploadOut | Error, 401: Error, 403: Error, 413: UploadOut},
)
def upload(
    request: HttpRequest, images: File[list[UploadedFile]], landmark: LandmarkName = ""
) -> Status[UploadOut]:
    """Multipart ``images`` (one or more files) and an optional ``landmark`` name (creating a landmark
    needs catalog.add_landmark). 201 with what was registered; 400 when nothing was readable; 413 when the
    one file sent is over UPLOAD_MAX_BYTES."""
    refusal = selectors.landmark_refusal(request.user, landmark)
    if refusal is not None:
        raise ApiRefusal(403, refusal)
    read = read_uploads(images)
    added, failed = services.upload_images(read.readable, landmark_name=landmark)
    errors = [*read.errors, *failed]
    status = 201 if added else (413 if read.too_large and len(errors) == 1 else 400)
    return Status(
        status,
        UploadOut(
            images=[UploadedImage(id=i.pk, status=i.status, page_url=i.get_absolute_url()) for i in added],
            errors=[UploadProblem(name=name, error=message) for name, message in errors],
        ),
    )


@router.get(
    "/landmarks/",
    url_name="landmarks",
    summary="The collection's landmarks by name",
    response={200: list[LandmarkOut], 400: Error},
)
@paginate(PageNumbers)
def landmarks(request: HttpRequest) -> Any:
    return selectors.landmarks_with_counts()


@router.get(
    "/collection/progress/",
    url_name="collection-progress",
    summary="Indexing counts",
    response={200: ProgressOut, 400: Error},
)
def progress(request: HttpRequest, query: Query[ProgressQuery]) -> ProgressOut:
    counts = selectors.indexing_progress(query.image_ids())
    return ProgressOut(
        total=counts.total,
        indexed=counts.indexed,
        pending=counts.pending,
        failed=counts.failed,
        local_features=counts.local_features,
        percent=round(counts.percent, 1),
    )
