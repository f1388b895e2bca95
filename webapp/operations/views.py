"""Probes and metrics: ``/healthz/`` (liveness: the process answers), ``/readyz`` (readiness: it can serve,
`webapp.operations.readiness`) and ``/metrics`` (Prometheus, `webapp.metrics`). All three are exempt from
the https redirect: probes and scrapers speak plain HTTP to the process."""

from __future__ import annotations

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.utils.crypto import constant_time_compare
from django.views.decorators.http import require_GET
from prometheus_client import CONTENT_TYPE_LATEST

from webapp.metrics import exposition
from webapp.operations.collectors import CatalogueCollector, QueueCollector
from webapp.operations.readiness import check_readiness


@require_GET
def healthz(request: HttpRequest) -> HttpResponse:
    return HttpResponse("ok", content_type="text/plain")


@require_GET
def readyz(request: HttpRequest) -> JsonResponse:
    """200 when the database, Redis, Milvus and the active collection answer; 503 naming the failing ones."""
    readiness = check_readiness()
    body = {"ready": readiness.ready, "checks": readiness.checks, "failing": readiness.failing}
    return JsonResponse(body, status=200 if readiness.ready else 503)


@require_GET
def metrics(request: HttpRequest) -> HttpResponse:
    """The Prometheus text format; with ``METRICS_TOKEN`` set, only for ``Authorization: Bearer <token>``."""
    token = settings.METRICS_TOKEN
    if token and not constant_time_compare(request.headers.get("Authorization", ""), f"Bearer {token}"):
        return HttpResponse("send the metrics bearer token", status=401, content_type="text/plain")
    body = exposition([QueueCollector(), CatalogueCollector()])
    return HttpResponse(body, content_type=CONTENT_TYPE_LATEST)
