"""docker-compose.yml and the Procfile match what the code reads."""

from __future__ import annotations

import importlib
import os
import re
import subprocess
from pathlib import Path

import yaml

import webapp.settings
from webapp import env
from webapp import front as front_module

ROOT = Path(__file__).resolve().parent.parent
APP_SERVICES = ["migrate", "web", "worker-cpu", "worker-gpu", "beat"]


def _compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def _read_variables() -> set[str]:
    importlib.reload(webapp.settings)  # record every variable the settings module reads
    return set(env.READ_VARIABLES)


def test_every_app_service_sets_only_variables_the_settings_read() -> None:
    services = _compose()["services"]
    read = _read_variables()
    for name in APP_SERVICES:
        environment = services[name]["environment"]
        assert set(environment) <= read, f"{name} sets unknown variables {set(environment) - read}"
        for required in ("DATABASE_URL", "REDIS_URL", "MILVUS_URI", "MEDIA_ROOT", "SECRET_KEY"):
            assert required in environment, f"{name} does not set {required}"


def test_app_services_point_at_the_compose_backends() -> None:
    services = _compose()["services"]
    environment = services["web"]["environment"]
    assert environment["DATABASE_URL"].startswith("postgres://")
    assert "@postgres:5432/" in environment["DATABASE_URL"]
    assert environment["REDIS_URL"].startswith("redis://redis:6379")
    assert environment["MILVUS_URI"] == "http://milvus:19530"
    assert {"postgres", "redis", "etcd", "minio", "milvus"} <= set(services)
    assert services["milvus"]["environment"]["ETCD_ENDPOINTS"] == "etcd:2379"


def test_every_long_running_service_has_a_healthcheck_and_persistent_data_has_volumes() -> None:
    compose = _compose()
    for name, service in compose["services"].items():
        if name == "migrate":
            continue
        assert "test" in service.get("healthcheck", {}), f"{name} has no healthcheck"
    for name in ("postgres", "redis", "etcd", "minio", "milvus"):
        volume = compose["services"][name]["volumes"][0].split(":")[0]
        assert volume in compose["volumes"]


def test_workers_consume_their_queues_and_the_gpu_worker_is_an_opt_in_profile() -> None:
    """`docker compose up` on a machine without a GPU: the cpu worker serves both queues; the GPU worker
    (which reserves an NVIDIA device) starts only with ``--profile gpu``, and nothing else needs a profile."""
    services = _compose()["services"]
    cpu, gpu = services["worker-cpu"]["command"], services["worker-gpu"]["command"]
    queues = re.fullmatch(r"\$\{CPU_WORKER_QUEUES:-([a-z,]+)\}", cpu[cpu.index("-Q") + 1])
    assert queues is not None and set(queues.group(1).split(",")) == {"cpu", "gpu"}
    assert gpu[gpu.index("-Q") + 1] == "gpu"
    assert services["worker-gpu"]["profiles"] == ["gpu"]
    assert [name for name, service in services.items() if "profiles" in service] == ["worker-gpu"]
    devices = services["worker-gpu"]["deploy"]["resources"]["reservations"]["devices"]
    assert devices[0]["capabilities"] == ["gpu"]
    routed = {route["queue"] for route in webapp.settings.CELERY_TASK_ROUTES.values()}
    assert routed <= set(queues.group(1).split(",")), "the default stack leaves a queue without a worker"


def test_the_image_runs_as_an_unprivileged_user() -> None:
    dockerfile = (ROOT / "deploy" / "Dockerfile").read_text()
    users = re.findall(r"^USER\s+(\S+)", dockerfile, re.MULTILINE)
    assert users and users[-1] not in {"root", "0"}
    # the folders the compose volumes mount are made (and owned) in the image
    assert "/data" in dockerfile and "/beat" in dockerfile and "chown" in dockerfile


def test_local_procfile_consumes_every_routed_queue_and_runs_a_real_web_server() -> None:
    procfile = dict(
        line.split(":", 1) for line in (ROOT / "Procfile").read_text().splitlines() if line.strip()
    )
    assert {"redis", "milvus", "beat", "web"} <= set(procfile)
    consumed = set()
    for command in procfile.values():
        words = command.split()
        if "worker" in words and "-Q" in words:
            consumed |= set(words[words.index("-Q") + 1].split(","))
    routed = {route["queue"] for route in webapp.settings.CELERY_TASK_ROUTES.values()}
    assert routed <= consumed, f"no worker consumes {routed - consumed}"
    assert procfile["web"].strip().startswith("gunicorn")
    assert "--schedule $VAR_DIR/" in procfile["beat"]


def test_one_beat_keeps_its_schedule_on_a_volume_and_answers_pings() -> None:
    compose = _compose()
    beat = compose["services"]["beat"]
    assert beat["command"][:4] == ["celery", "-A", "workers", "beat"]
    assert "--enable-remote-control" in beat["command"]
    schedule = beat["command"][beat["command"].index("--schedule") + 1]
    volume, mount = beat["volumes"][0].split(":")
    assert volume in compose["volumes"] and schedule.startswith(mount + "/")


def test_the_procfile_front_serves_what_gunicorn_binds_and_make_run_falls_back_without_nginx() -> None:
    """`make run`: nginx (webapp.front) in front of gunicorn on the internal port; without nginx (FRONT=0
    stands in for a machine without it) gunicorn serves the front's address itself, without the front
    process, and make run says so."""
    procfile = dict(
        line.split(":", 1) for line in (ROOT / "Procfile").read_text().splitlines() if line.strip()
    )
    front = procfile["front"].split()
    assert front[:3] == ["python", "-m", "webapp.front"]
    assert front[front.index("--upstream") + 1] == "127.0.0.1:$WEB_PORT"
    assert front[front.index("--listen") + 1] == "$FRONT_HOST:$FRONT_PORT"
    assert "--bind $WEB_HOST:$WEB_PORT" in procfile["web"]

    # As a user's shell starts it: not with the addresses a surrounding `make test` exports.
    inherited = {"WEB_HOST", "WEB_PORT", "FRONT_HOST", "FRONT_PORT", "FRONT", "CLIENT_IP_HEADER", "MAKEFLAGS"}
    environment = {name: value for name, value in os.environ.items() if name not in inherited}

    def dry_run(*overrides: str) -> str:
        return subprocess.run(
            ["make", "-n", "run", *overrides], cwd=ROOT, capture_output=True, text=True, timeout=60,
            env=environment,
        ).stdout

    without = dry_run("FRONT=0", "FRONT_PORT=8123")
    start = next(line for line in without.splitlines() if "honcho -f Procfile start" in line)
    assert "web" in start.split() and "front" not in start.split()
    assert "http://127.0.0.1:8123/" in without and "No nginx front" in without
    if front_module.nginx_binary() is not None:
        with_front = dry_run("FRONT_PORT=8123")
        start = next(line for line in with_front.splitlines() if "honcho -f Procfile start" in line)
        assert start.split()[start.split().index("start") + 1] == "||"  # every process, the front included
        assert "http://127.0.0.1:8123/" in with_front and "nginx in front" in with_front


def test_compose_publishes_only_the_front_which_renders_the_shipped_template() -> None:
    services = _compose()["services"]
    front = services["front"]
    assert {name for name, service in services.items() if "ports" in service} == {"milvus", "front"}
    source, target, _ = front["volumes"][0].split(":")
    assert (ROOT / source).resolve() == front_module.TEMPLATE
    assert target == "/etc/nginx/templates/default.conf.template"  # replaces the image's default server
    assert front["environment"]["FRONT_UPSTREAM"] == "web:8000"
    assert set(front_module.DEFAULTS) <= set(front["environment"]), "an unset variable stays ${...} in nginx"
    assert front["depends_on"]["web"]["condition"] == "service_healthy"
    assert services["web"]["environment"]["CLIENT_IP_HEADER"] == "HTTP_X_REAL_IP"
