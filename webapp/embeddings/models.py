"""Embedding model versions: each one owns a Milvus collection of its own vectors."""

from __future__ import annotations

from django.db import models
from django.db.models import Q

from retrieval_core.models.embedding import EmbeddingConfig

__all__ = ["EmbeddingModelVersion", "RetiredVersionError"]


class RetiredVersionError(ValueError):
    """The version's collection holds vectors this release no longer computes: a query embedded now would
    not match them, so the version is neither searched, indexed into nor activated."""


class EmbeddingModelVersion(models.Model):
    name = models.CharField(max_length=255, unique=True)
    backbone = models.CharField(max_length=128)
    weights = models.CharField(
        max_length=500, help_text="'imagenet' for the packaged weights, or the path of a checkpoint."
    )
    image_size = models.PositiveIntegerField(help_text="Long side in pixels; the aspect ratio is kept.")
    gem_p = models.FloatField(default=3.0)
    dim = models.PositiveIntegerField()
    collection_name = models.CharField(max_length=255, unique=True)

    class State(models.TextChoices):
        NEW = "new", "not indexed yet"
        INDEXING = "indexing", "re-indexing the collection"
        INDEXED = "indexed", "indexed"
        DROPPED = "dropped", "collection dropped"
        # Indexed with a multi-scale global descriptor, which is no longer computed (migration 0004).
        RETIRED = "retired", "retired: multi-scale descriptor no longer served"

    state = models.CharField(max_length=16, choices=State.choices, default=State.INDEXED)
    indexed_count = models.PositiveIntegerField(default=0)
    total_count = models.PositiveIntegerField(default=0)
    is_active = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["is_active"], condition=Q(is_active=True), name="one_active_embedding_version"
            )
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def config(self) -> EmbeddingConfig:
        """How the version's vectors are computed; raises `RetiredVersionError` for a retired version."""
        self.refuse_if_retired()
        return EmbeddingConfig(
            backbone=self.backbone, weights=self.weights, image_size=self.image_size, gem_p=self.gem_p
        )

    def refuse_if_retired(self) -> None:
        """Raise `RetiredVersionError` for a version indexed with a descriptor no longer computed, so that no
        query or photo is ever embedded otherwise than its collection was (search, indexing, activation)."""
        if self.state == self.State.RETIRED:
            raise RetiredVersionError(
                f"Model version {self.name} was indexed with a multi-scale global descriptor, which this "
                "release no longer computes, so its collection cannot be searched or added to: register a "
                "model at one input size and activate it (`python manage.py register_model --activate`, or "
                "the Models page), then drop this version's collection."
            )
