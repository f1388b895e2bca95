"""Landmark photo collections on disk and synthetic ones for tests."""

from retrieval_core.datasets.collection import (
    IMAGE_EXTENSIONS,
    UNLABELLED,
    CollectionFormatError,
    CollectionItem,
    CollectionReadResult,
    Layout,
    detect_layout,
    read_collection,
    read_collection_report,
)
from retrieval_core.datasets.synthetic import make_scene, render_view, visible_fraction, write_collection

__all__ = [
    "IMAGE_EXTENSIONS",
    "UNLABELLED",
    "CollectionFormatError",
    "CollectionItem",
    "CollectionReadResult",
    "Layout",
    "detect_layout",
    "make_scene",
    "read_collection",
    "read_collection_report",
    "render_view",
    "visible_fraction",
    "write_collection",
]
