"""Query photos past their retention are forgotten by the periodic purge, rows and files."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.conf import settings
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.utils import timezone

from webapp.reranking.models import SearchQuery
from webapp.search.retention import purge_expired_queries
from workers.tasks.cpu import purge_expired_queries as purge_task

pytestmark = pytest.mark.django_db


def _query(age: timedelta) -> SearchQuery:
    query = SearchQuery(evidence={})
    query.file.save(f"{query.id}.jpg", ContentFile(b"jpeg bytes"), save=True)
    SearchQuery.objects.filter(pk=query.pk).update(created_at=timezone.now() - age)
    return query


def test_purge_deletes_expired_queries_and_their_files_only() -> None:
    retention = timedelta(hours=settings.QUERY_RETENTION_HOURS)
    expired = [_query(retention + timedelta(minutes=1)) for _ in range(2)]
    fresh = _query(retention - timedelta(minutes=5))

    assert purge_expired_queries() == 2
    assert list(SearchQuery.objects.values_list("pk", flat=True)) == [fresh.pk]
    assert not any(default_storage.exists(query.file.name) for query in expired)
    assert default_storage.exists(fresh.file.name)
    assert purge_expired_queries() == 0


def test_the_periodic_task_runs_the_purge() -> None:
    _query(timedelta(hours=settings.QUERY_RETENTION_HOURS + 1))
    assert purge_task.apply().get() == 1
    assert not SearchQuery.objects.exists()
