"""Embedding model versions: each one owns a Milvus collection of its own vectors."""

from __future__ import annotations

from django.db import models
from django.db.models import Q

from retrieval_core.models.embedding import EmbeddingConfig


class EmbeddingModelVersion(models.Model):
    name = models.CharField(max_length=255, unique=True)
    backbone = models.CharField(max_length=128)
    weights = models.CharField(
        max_length=500, help_text="'imagenet' for the packaged weights, or the path of a checkpoint."
    )
    image_size = models.PositiveIntegerField(help_text="Long side in pixels; the aspect ratio is kept.")
    gem_p = models.FloatField(default=3.0)
    scales = models.JSONField(
        default=list, blank=True, help_text="Multi-scale factors after 1.0 (empty: single scale)."
    )
    dim = models.PositiveIntegerField()
    collection_name = models.CharField(max_length=255, unique=True)

    class State(models.TextChoices):
        NEW = "new", "not indexed yet"
        INDEXING = "indexing", "re-indexing the collection"
        INDEXED = "indexed", "indexed"
        DROPPED = "dropped", "collection dropped"

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
        return EmbeddingConfig(
            backbone=self.backbone,
            weights=self.weights,
            image_size=self.image_size,
            gem_p=self.gem_p,
            scales=(1.0, *(float(s) for s in self.scales)),
        )
