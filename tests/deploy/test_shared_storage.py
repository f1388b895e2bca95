"""Every path that one app process writes and another reads is on storage they share, in docker-compose.yml
and in the Kubernetes manifests (deploy/k8s): a shared named volume, a ReadWriteMany claim, or the bucket.

The checker (tests/deploy/shared_paths.py) takes the path settings from webapp/settings.py itself, so a
compose file that leaves FEATURES_ROOT on each container's own disk is caught: the last tests show it.
"""

from __future__ import annotations

import copy
from pathlib import PurePosixPath
from urllib.parse import urlparse

import pytest
import yaml

from tests.deploy.shared_paths import ROOT, compose_processes, path_settings, storage_problems


def _compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


@pytest.mark.parametrize(
    "variables",
    [
        {"STORAGE_BACKEND": "local"},
        {"STORAGE_BACKEND": "s3"},
        {"STORAGE_BACKEND": "s3", "MEDIA_STORAGE": "s3"},  # photos in the bucket too
    ],
)
def test_compose_app_services_share_every_path_they_pass_on(variables: dict[str, str]) -> None:
    processes = compose_processes(_compose(), variables)
    assert {p.name for p in processes} >= {"migrate", "web", "worker-cpu", "worker-gpu", "beat"}
    assert storage_problems(processes) == []


def test_the_shared_paths_include_media_features_and_training_runs() -> None:
    web = next(p for p in compose_processes(_compose(), {}) if p.name == "web")
    paths = path_settings(web.environment)
    assert {"MEDIA_ROOT", "FEATURES_ROOT", "VAR_DIR"} <= set(paths)
    assert all(paths[name].is_relative_to(PurePosixPath("/data")) for name in ("MEDIA_ROOT", "FEATURES_ROOT"))


def test_a_compose_file_with_features_on_each_containers_own_disk_fails_the_check() -> None:
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

    photos = copy.deepcopy(compose)  # one worker looks for the photos in the bucket, the rest on /data/media
    photos["services"]["worker-gpu"]["environment"] = {
        **photos["services"]["worker-gpu"]["environment"],
        "MEDIA_STORAGE": "s3",
    }
    problems = storage_problems(compose_processes(photos, {"STORAGE_BACKEND": "s3"}))
    assert any("media storage" in p and "'MEDIA_STORAGE': 's3'" in p for p in problems)


def test_compose_s3_settings_point_at_the_stacks_minio_with_its_credentials() -> None:
    compose = _compose()
    minio = compose["services"]["minio"]
    for process in compose_processes(compose, {"STORAGE_BACKEND": "s3"}):
        environment = process.environment
        endpoint = urlparse(environment["AWS_S3_ENDPOINT_URL"])
        assert endpoint.hostname in compose["services"] and endpoint.port == 9000, process.name
        assert environment["AWS_ACCESS_KEY_ID"] == minio["environment"]["MINIO_ROOT_USER"]
        assert environment["AWS_SECRET_ACCESS_KEY"] == minio["environment"]["MINIO_ROOT_PASSWORD"]
        if process.name != "beat":  # beat only sends tasks: it never opens a stored file
            assert "minio" in _started_before(compose, process.name), f"{process.name} may start before MinIO"


def _started_before(compose: dict, name: str) -> set[str]:
    """Every service ``name`` waits for, directly or through others."""
    seen: set[str] = set()
    todo = [name]
    while todo:
        for dependency in compose["services"][todo.pop()].get("depends_on", {}):
            if dependency not in seen:
                seen.add(dependency)
                todo.append(dependency)
    return seen
