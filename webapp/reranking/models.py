"""State of re-ranking that must survive restarts: VLAD codebooks, tuned fusion weights, recent queries."""

from __future__ import annotations

import uuid

from django.db import models


class VladCodebook(models.Model):
    """A k-means codebook of RootSIFT descriptors; VLAD vectors built with it live in their own collection."""

    key = models.CharField(max_length=200, unique=True)
    clusters = models.PositiveIntegerField()
    path = models.CharField(max_length=500)  # the centroids' .npy: under FEATURES_ROOT, or an s3:// object
    collection_name = models.CharField(max_length=255)
    descriptor_count = models.PositiveIntegerField()
    whitening_dim = models.PositiveIntegerField(
        null=True, blank=True, help_text="VLADs are PCA-whitened down to this many dimensions (None: raw)."
    )
    is_active = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return self.key

    @property
    def vector_dim(self) -> int:
        return self.whitening_dim or self.clusters * 128

    @property
    def settings_path(self) -> str:
        """The .json beside the centroids (k, dim, the SIFT settings they were learnt on)."""
        return self.path.removesuffix(".npy") + ".json"

    @property
    def whitening_path(self) -> str:
        return self.path.removesuffix(".npy") + ".pca.npz"


class FusionSetting(models.Model):
    """A fusion weight v chosen on a validation split; the newest per method is used by search."""

    method = models.CharField(max_length=16)
    weight_global = models.FloatField()
    top_k = models.PositiveIntegerField()
    validation_map = models.FloatField(help_text="mAP@100 on the validation queries with this weight.")
    baseline_map = models.FloatField(help_text="mAP@100 of the global ranking on the same queries.")
    validation_queries = models.PositiveIntegerField()
    table = models.JSONField(default=list, help_text="[[v, mAP@100], ...] for every weight tried.")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.method}: v={self.weight_global:.2f}"


class SearchQuery(models.Model):
    """A query photo kept for a while so result pages can draw its matches with a result."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    file = models.FileField(upload_to="queries/", max_length=500)
    evidence = models.JSONField(
        default=dict, help_text="{image_id: [[xq, yq, xr, yr], ...]} inlier pairs in original pixels."
    )
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    def __str__(self) -> str:
        return str(self.id)
