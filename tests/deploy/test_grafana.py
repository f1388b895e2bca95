"""The Grafana dashboard reads only series the product exports, and every series the product exports has a
panel (the families of a real /metrics scrape: Redis and Milvus up, after a reconcile run)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from django.test import Client
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import LiveServices
from webapp.operations import services

DASHBOARD = Path(__file__).resolve().parents[2] / "deploy" / "grafana" / "landmark-search.json"
_SUFFIXES = re.compile(r"_(total|bucket|count|sum)$")


def _queried_families(dashboard: dict) -> set[str]:
    expressions = [target["expr"] for panel in dashboard["panels"] for target in panel.get("targets", [])]
    assert expressions
    return {_SUFFIXES.sub("", name) for expr in expressions for name in re.findall(r"landmarks_\w+", expr)}


@pytest.mark.services
@pytest.mark.django_db
def test_the_dashboard_and_the_exported_series_match(live_services: LiveServices, client: Client) -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    assert dashboard["templating"]["list"][0]["type"] == "datasource"
    assert services.reconcile().run is not None
    scrape = client.get("/metrics").content.decode()
    exported = {family.name for family in text_string_to_metric_families(scrape)}
    exported = {name for name in exported if name.startswith("landmarks_")}
    assert not any(name.endswith("_scrape_failed") for name in exported)  # Redis and the database answered
    queried = _queried_families(dashboard)
    assert queried - exported == set(), "panels query series the product does not export"
    assert exported - queried == set(), "exported series without a panel"
