"""Landmark proposals for unlabelled images: each is searched from its own file through the served
pipeline ("more like this", itself excluded), and the recognition vote of its re-ranked neighbours
(weighted by verified SIFT inliers) is the proposal. Only a vote backed by verified matches proposes."""

from __future__ import annotations

from dataclasses import dataclass

from django.db.models import QuerySet

from webapp.catalog.models import Image, Landmark
from webapp.search.services import search_similar

__all__ = ["Proposal", "propose_landmark", "unlabelled_images"]


@dataclass(frozen=True)
class Proposal:
    """``landmark`` None: no labelled neighbour with verified matches; ``reason`` says why not."""

    image: Image
    landmark: Landmark | None
    confidence: float
    inliers: int | None
    voters: tuple[int, ...]
    reason: str = ""


def unlabelled_images() -> QuerySet[Image]:
    """Images without a landmark that are in the search index (the others cannot be compared yet)."""
    return (
        Image.objects.filter(landmark__isnull=True, status=Image.Status.INDEXED)
        .select_related("exif")
        .order_by("pk")
    )


def propose_landmark(image: Image) -> Proposal:
    """The landmark the image's verified neighbours vote for (see the module docstring)."""
    response = search_similar(image)
    prediction = response.prediction
    if prediction is None or prediction.landmark is None:
        return Proposal(image, None, 0.0, None, (), "no labelled neighbour")
    if prediction.weighted_by != "inliers" or not prediction.inliers:
        return Proposal(
            image, None, prediction.confidence, None, (), "no verified match with a labelled image"
        )
    landmark = Landmark.objects.filter(pk=int(str(prediction.landmark))).first()
    return Proposal(
        image,
        landmark,
        prediction.confidence,
        prediction.inliers,
        tuple(int(str(pk)) for pk in prediction.voters),
    )
