"""Forgetting query photos once their result pages no longer need them.

A search keeps its photo (`SearchQuery`) for ``QUERY_RETENTION_HOURS`` so a result page can draw the
matches. The purge runs as a periodic task (Celery beat, ``workers.tasks.cpu.purge_expired_queries``), so
no search request deletes files.
"""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.utils import timezone

from webapp.reranking.models import SearchQuery

_BATCH = 500


def purge_expired_queries() -> int:
    """Delete the query photos (rows and files) older than the retention; returns how many."""
    cutoff = timezone.now() - timedelta(hours=settings.QUERY_RETENTION_HOURS)
    purged = 0
    while batch := list(SearchQuery.objects.filter(created_at__lt=cutoff).order_by("created_at")[:_BATCH]):
        SearchQuery.objects.filter(pk__in=[query.pk for query in batch]).delete()
        for query in batch:  # after the rows: a page never finds a row whose file is gone
            query.file.delete(save=False)
        purged += len(batch)
    return purged
