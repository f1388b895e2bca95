"""A stored evaluation run: what was evaluated, how, its progress and its report."""

from __future__ import annotations

from django.db import models
from django.urls import reverse

from webapp.runs import RecordedRun


class EvaluationRun(RecordedRun):
    class Status(models.TextChoices):
        QUEUED = "queued", "queued"
        RUNNING = "running", "running"
        DONE = "done", "done"
        FAILED = "failed", "failed"

    root = models.CharField(max_length=1000, help_text="Folder of the labelled collection on the workers.")
    options = models.JSONField(default=dict, help_text="retrieval_core.eval.options.LadderOptions")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED, db_index=True)
    stage = models.CharField(max_length=200, blank=True)
    done = models.PositiveIntegerField(default=0)
    total = models.PositiveIntegerField(default=0)
    report = models.JSONField(null=True, blank=True)
    markdown = models.TextField(blank=True)

    def __str__(self) -> str:
        return f"evaluation {self.pk} of {self.root}"

    def get_absolute_url(self) -> str:
        return reverse("evaluation:detail", args=[self.pk])

    @property
    def output_dir_name(self) -> str:
        """Folder of the media storage (MEDIA_ROOT or the bucket) holding the run's report files and plots."""
        return f"evaluations/{self.pk}-{self.created_at:%Y%m%dT%H%M%S%f}"
