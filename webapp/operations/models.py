"""What the reconciler found and did on each run, and when it last re-sent each image's work."""

from __future__ import annotations

from django.db import models

from webapp.catalog.models import Image


class ReconcileRun(models.Model):
    """One pass of `webapp.operations.services.reconcile`: the drift it found, and what it re-sent."""

    started_at = models.DateTimeField(auto_now_add=True, db_index=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    requeued_pending = models.PositiveIntegerField(default=0)
    missing_local_features = models.PositiveIntegerField(default=0)
    unreadable_local_features = models.PositiveIntegerField(default=0)
    catalogue_indexed = models.PositiveIntegerField(default=0)
    vector_rows = models.PositiveIntegerField(default=0)
    missing_vectors = models.PositiveIntegerField(
        default=0, help_text="Indexed in the catalogue, absent in Milvus."
    )
    orphan_vectors = models.PositiveIntegerField(default=0, help_text="In Milvus, not a searchable image.")
    stale_analysis = models.PositiveIntegerField(default=0)
    error = models.TextField(blank=True)

    class Meta:
        ordering = ["-started_at", "-id"]

    def __str__(self) -> str:
        return f"reconcile run {self.pk} at {self.started_at:%Y-%m-%d %H:%M:%S}"

    @property
    def drift(self) -> int:
        """Everything found out of step (0 = catalogue, files, Milvus and analysis agree)."""
        return (
            self.requeued_pending
            + self.missing_local_features
            + self.unreadable_local_features
            + self.missing_vectors
            + self.orphan_vectors
            + self.stale_analysis
        )


class Resend(models.Model):
    """When the reconciler last re-sent one kind of work for an image: it waits a stale period before the
    next re-send, so a long queue is not flooded with copies of work still waiting in it."""

    class Kind(models.TextChoices):
        INDEX = "index", "embedding and indexing"
        LOCAL_FEATURES = "local", "local features"
        ANALYSIS = "analysis", "dataset analysis"

    image = models.ForeignKey(Image, on_delete=models.CASCADE, related_name="+")
    kind = models.CharField(max_length=16, choices=Kind.choices)
    sent_at = models.DateTimeField(db_index=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["image", "kind"], name="one_resend_per_image_and_kind")
        ]

    def __str__(self) -> str:
        return f"{self.kind} of image {self.image_id} re-sent at {self.sent_at}"
