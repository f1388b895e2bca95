"""Every path that one app process writes and another reads is on storage they share, in docker-compose.yml
and in the Kubernetes manifests (deploy/k8s): a shared named volume, a ReadWriteMany claim, or the bucket.

The checker (tests/deploy/shared_paths.py) takes the path settings from webapp/settings.py itself, so the
issue-13 bug (FEATURES_ROOT left on each container's own disk) is caught; the last tests show it would be.
"""

from __future__ import annotations

import copy
from pathlib import PurePosixPath

import pytest
import yaml

from tests.deploy.shared_paths import ROOT, compose_processes, path_settings, storage_problems


def _compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


@pytest.mark.parametrize("backend", ["local", "s3"])
def test_compose_app_services_share_every_path_they_pass_on(backend: str) -> None:
    processes = compose_processes(_compose(), {"STORAGE_BACKEND": backend})
    assert {p.name for p in processes} >= {"migrate", "web", "worker-cpu", "worker-gpu", "beat"}
    assert storage_problems(processes) == []


def test_the_shared_paths_include_media_features_and_training_runs() -> None:
    web = next(p for p in compose_processes(_compose(), {}) if p.name == "web")
    paths = path_settings(web.environment)
    assert {"MEDIA_ROOT", "FEATURES_ROOT", "VAR_DIR"} <= set(paths)
    assert all(paths[name].is_relative_to(PurePosixPath("/data")) for name in ("MEDIA_ROOT", "FEATURES_ROOT"))


def test_the_compose_file_before_issue_13_fails_the_check() -> None:
    """Each container had its own /app/var/features (SIFT, codebooks) and /app/var (training runs)."""
    compose = _compose()
    old = copy.deepcopy(compose)
    for service in old["services"].values():
        environment = service.get("environment") or {}
        for name in ("FEATURES_ROOT", "VAR_DIR"):
            environment.pop(name, None)
        if service.get("volumes") == ["shared:/data"]:
            service["volumes"] = ["media:/data/media"]
    old["services"]["beat"]["volumes"] = ["beat:/data/beat"]
    old["volumes"]["media"] = None
    problems = storage_problems(compose_processes(old, {}))
    assert "worker-cpu: FEATURES_ROOT=/app/var/features is on the container's own file system" in problems
    assert any("web: VAR_DIR=/app/var" in p for p in problems)
    assert not any("MEDIA_ROOT" in p and "web" in p for p in problems)  # media was on a named volume then


def test_a_bind_mount_a_private_volume_or_half_the_services_on_s3_fail_the_check() -> None:
    compose = _compose()
    bind = copy.deepcopy(compose)
    bind["services"]["worker-gpu"]["volumes"] = ["./data:/data"]
    problems = storage_problems(compose_processes(bind, {}))
    assert any(p.startswith("worker-gpu: MEDIA_ROOT") and "host folder" in p for p in problems)

    moved = copy.deepcopy(compose)
    web = moved["services"]["web"]
    web["environment"] = {**web["environment"], "FEATURES_ROOT": "/f"}
    assert any("web: FEATURES_ROOT=/f" in p for p in storage_problems(compose_processes(moved, {})))

    half = copy.deepcopy(compose)
    half["services"]["worker-cpu"]["environment"] = {
        **half["services"]["worker-cpu"]["environment"],
        "STORAGE_BACKEND": "s3",
    }
    assert any("worker-cpu" in p and "s3" in p for p in storage_problems(compose_processes(half, {})))
