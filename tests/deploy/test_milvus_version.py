"""The Milvus server a deployment runs is the one the client is tested against: docker-compose.yml and the
Helm values pin the image of the locked ``milvus`` package, whose standalone server the vector-store,
fault and benchmark tests start (tests/conftest.py: ``milvus_standalone_uri``)."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]


def _locked(package: str) -> str:
    lock = (ROOT / "requirements.lock").read_text()
    found = re.search(rf"^{re.escape(package)}==(\S+)$", lock, re.MULTILINE)
    assert found, f"{package} is not pinned in requirements.lock"
    return found.group(1)


def test_compose_and_helm_run_the_milvus_server_the_tests_start() -> None:
    tested = f"v{_locked('milvus')}"
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    assert compose["services"]["milvus"]["image"] == f"milvusdb/milvus:{tested}"
    helm = yaml.safe_load((ROOT / "deploy/k8s/milvus/values.yaml").read_text())
    assert helm["image"]["all"] == {"repository": "milvusdb/milvus", "tag": tested}
