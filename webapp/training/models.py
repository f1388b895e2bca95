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


class MiningRun(models.Model):
    """The ``self`` recipe's mining stage: training pairs from the collection by geometric verification.

    Chunks of candidate pairs are verified by separate tasks (state files under the training run's folder,
    so a lost task is simply re-sent); the summary (statistics, a few sample pairs with their match
    drawings) is kept here, the full result (pairs, components) in ``mining/result.json``.
    """

    class Status(models.TextChoices):
        QUEUED = "queued", "queued"
        CANDIDATES = "candidates", "finding candidate pairs"
        VERIFYING = "verifying", "verifying pairs"
        SUMMARISING = "summarising", "summarising"
        DONE = "done", "done"
        FAILED = "failed", "failed"

    training_run = models.OneToOneField(TrainingRun, on_delete=models.CASCADE, related_name="mining")
    config = models.JSONField(
        default=dict, help_text="retrieval_core.training.pair_mining.MiningConfig as JSON"
    )
    held_out = models.JSONField(
        default=list, blank=True, help_text="Image ids (relpaths or catalogue keys) never mined."
    )
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED)
    stage = models.CharField(max_length=64, blank=True)
    done = models.PositiveIntegerField(default=0)
    total = models.PositiveIntegerField(default=0)
    statistics = models.JSONField(default=dict, blank=True)
    samples = models.JSONField(
        default=list, blank=True, help_text="[{a, b, inliers, similarity, drawing (data: URI)}, ...]"
    )
    error = models.TextField(blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"mining for training run {self.training_run_id}"

    @property
    def is_finished(self) -> bool:
        return self.status in {self.Status.DONE, self.Status.FAILED}
