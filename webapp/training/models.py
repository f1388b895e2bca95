"""A training run: its settings, live progress (loss and validation mAP curves) and its product."""

from __future__ import annotations

from django.db import models
from django.urls import reverse

from webapp.runs import RecordedRun


class TrainingRun(RecordedRun):
    class Status(models.TextChoices):
        QUEUED = "queued", "queued"
        RUNNING = "running", "running"
        DONE = "done", "done"
        CANCELLED = "cancelled", "cancelled"
        FAILED = "failed", "failed"

    root = models.CharField(
        max_length=1000, blank=True, help_text="Collection folder; empty = the curated catalogue."
    )
    config = models.JSONField(default=dict, help_text="retrieval_core.training.TrainConfig as JSON")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED, db_index=True)
    cancel_requested = models.BooleanField(default=False)
    epoch = models.PositiveIntegerField(default=0)
    step = models.PositiveIntegerField(default=0)
    total_steps = models.PositiveIntegerField(default=0)
    images_per_s = models.FloatField(null=True, blank=True)
    losses = models.JSONField(default=list, help_text="[[step, loss], ...] (thinned to ~500 points)")
    epochs = models.JSONField(default=list, help_text="[{epoch, step, loss, validation_map, is_best}, ...]")
    initial_map = models.FloatField(null=True, blank=True)
    best_map = models.FloatField(null=True, blank=True)
    best_checkpoint = models.CharField(max_length=1000, blank=True)
    model_version = models.ForeignKey(
        "embeddings.EmbeddingModelVersion", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    def __str__(self) -> str:
        return f"training run {self.pk} ({self.config.get('recipe', '?')})"

    def get_absolute_url(self) -> str:
        return reverse("training:detail", args=[self.pk])

    @property
    def is_finished(self) -> bool:
        return self.status in {self.Status.DONE, self.Status.CANCELLED, self.Status.FAILED}
