"""What a search can fail with, and the status and message each failure is answered with.

One table for every way a search is asked: the JSON API's exception handler (``webapp.api.errors``), each
photo of a batch, and the search page all answer a failure from here, so none of them ever turns one into a
500. Messages of unavailable services are fixed sentences (the cause is logged, not shown).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from pymilvus.exceptions import MilvusException

from retrieval_core.imaging import ImageLoadError
from retrieval_core.index.milvus_store import OutdatedCollectionError
from retrieval_core.index.vector_index import CollectionMissingError
from webapp.catalog.uploads import UploadTooLarge
from webapp.embeddings.models import RetiredVersionError
from webapp.media import MediaUnavailable
from webapp.reranking.scoring import RerankUnavailable

__all__ = ["BadParameter", "Failure", "NotInIndex", "UnknownImage", "failure"]

logger = logging.getLogger(__name__)


class BadParameter(ValueError):
    """A search parameter is malformed or out of range; the message names it and says what is expected."""


class UnknownImage(LookupError):
    """"More like this" from an image the catalogue does not have."""


class NotInIndex(Exception):
    """"More like this" from an image that is not (or not yet) in the search index."""


@dataclass(frozen=True)
class Failure:
    status: int
    message: str


# Checked in order: UploadTooLarge is an ImageLoadError, MediaUnavailable a ConnectionError.
_CLIENT_ERRORS: tuple[tuple[type[Exception], int], ...] = (
    (BadParameter, 400),
    (UploadTooLarge, 413),
    (ImageLoadError, 400),
    (UnknownImage, 404),
    (NotInIndex, 409),
    (RerankUnavailable, 409),
    (OutdatedCollectionError, 409),
    (RetiredVersionError, 409),  # the active version's descriptor is no longer computed: activate another
)
_UNAVAILABLE: tuple[tuple[type[Exception], str, str], ...] = (
    (
        CollectionMissingError,
        "search index missing",
        "The search index of the active model does not exist yet: import or upload photos first.",
    ),
    (
        MediaUnavailable,
        "photo store unreachable",
        "The photo store is not reachable right now; please try again in a moment.",
    ),
    (
        MilvusException,
        "search index unreachable",
        "The search index is not reachable right now; please try again in a moment.",
    ),
    (  # a stored file the search needs (model weights, ...) or its store
        ConnectionError,
        "search storage unavailable",
        "A file the search needs cannot be read right now; please try again in a moment.",
    ),
)


def failure(error: Exception) -> Failure | None:
    """The answer to a search failure (4xx: the client's to fix; 503: a service is down), None for an error
    that is not a known failure of a search (a bug: let it be a 500 and reported)."""
    for kind, status in _CLIENT_ERRORS:
        if isinstance(error, kind):
            return Failure(status, str(error))
    for kind, what, message in _UNAVAILABLE:
        if isinstance(error, kind):
            logger.error("%s: %s", what, error)
            return Failure(503, message)
    return None
