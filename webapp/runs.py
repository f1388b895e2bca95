"""What every long-running, recorded piece of work (evaluation, training) keeps: who, when, how it ended."""

from __future__ import annotations

from django.conf import settings
from django.db import models


class RecordedRun(models.Model):
    error = models.TextField(blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        abstract = True
        ordering = ["-created_at"]
