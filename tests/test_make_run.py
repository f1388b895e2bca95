"""`make run` as a new user starts it, in an empty folder: it says where to browse and what to do next, and
once the stack is up an operator's probes and scrapers get answers at that address: `/readyz` ready
(database, Redis, Milvus, the collection) and `/metrics`, and a Celery worker's metrics on its port. Ctrl-C
stops all of it."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from webapp.localstack import free_port

ROOT = Path(__file__).resolve().parent.parent
STARTUP_S = 300  # migrations, the model loaded by gunicorn and two workers, Milvus Lite: on a busy machine

# What the test run points at its own throw-away services (tests/environment.py): not the stack's.
TEST_RUN_SETTINGS = (
    "VAR_DIR", "MEDIA_ROOT", "STATIC_ROOT", "SQLITE_TEST_NAME", "DATABASE_URL", "REDIS_URL", "MILVUS_URI",
    "MILVUS_COLLECTION_PREFIX", "EMBEDDING_IMAGE_SIZE", "UPLOAD_MAX_BYTES", "IMAGE_MAX_PIXELS",
    "INDEX_TASK_BATCH", "SEARCH_RATE_LIMIT", "PROMETHEUS_MULTIPROC_DIR", "METRICS_TOKEN",
)  # fmt: skip

pytestmark = pytest.mark.services


def _get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=10) as reply:
            return reply.status, reply.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()
    except OSError as error:  # not listening yet
        return 0, str(error)


def _wait_for(url: str, stack: subprocess.Popen[bytes], log: Path, *, ready: int = 200) -> str:
    deadline = time.monotonic() + STARTUP_S
    status, body = 0, ""
    while time.monotonic() < deadline:
        assert stack.poll() is None, f"make run exited ({stack.returncode}):\n{log.read_text()[-4000:]}"
        status, body = _get(url)
        if status == ready:
            return body
        time.sleep(2)
    raise AssertionError(f"{url}: {status} {body[:500]}\n{log.read_text()[-4000:]}")


def test_make_run_says_what_next_and_answers_readyz_and_metrics(tmp_path: Path) -> None:
    names = ("FRONT_PORT", "WEB_PORT", "REDIS_PORT", "MILVUS_PORT", "CPU", "GPU")
    ports = {name: free_port() for name in names}
    env = {key: value for key, value in os.environ.items() if key not in TEST_RUN_SETTINGS}
    env.update(
        PATH=f"{Path(sys.executable).parent}:{os.environ['PATH']}",  # this environment's make, honcho, celery
        VAR_DIR=str(tmp_path / "var"),
        FRONT_PORT=str(ports["FRONT_PORT"]),  # where people browse when a front (nginx) serves the stack
        WEB_PORT=str(ports["WEB_PORT"]),
        REDIS_PORT=str(ports["REDIS_PORT"]),
        MILVUS_PORT=str(ports["MILVUS_PORT"]),
        CPU_WORKER_METRICS_PORT=str(ports["CPU"]),
        GPU_WORKER_METRICS_PORT=str(ports["GPU"]),
        CPU_WORKER_THREADS="1",
        GPU_WORKER_THREADS="1",
    )
    log = tmp_path / "make-run.log"
    with log.open("wb") as output:
        # -o: the installed environment counts as up to date (no pip run inside a test); the rest is make run.
        stack = subprocess.Popen(
            ["make", "--no-print-directory", "-o", ".venv/.installed", "run"],
            cwd=ROOT, env=env, stdout=output, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
        try:
            # The address make run tells the user, and gunicorn's own when a front stands before it.
            _wait_for(f"http://127.0.0.1:{ports['WEB_PORT']}/readyz", stack, log)
            printed = log.read_text()
            found = re.search(r"starting on (http://127\.0\.0\.1:(\d+))/", printed)
            assert found and int(found.group(2)) in (ports["FRONT_PORT"], ports["WEB_PORT"]), printed[-3000:]
            web = found.group(1)
            ready = json.loads(_wait_for(f"{web}/readyz", stack, log))
            parts = ("database", "redis", "milvus", "collection")
            assert ready["checks"] == dict.fromkeys(parts, "ok"), ready
            scrape = _wait_for(f"{web}/metrics", stack, log)
            assert "# TYPE" in scrape and "landmarks_" in scrape, scrape[:2000]
            worker = _wait_for(f"http://127.0.0.1:{ports['CPU']}/metrics", stack, log)
            assert "# TYPE" in worker, worker[:2000]
            assert "createsuperuser" in printed and "import_images" in printed, printed[:3000]
            assert printed.index("createsuperuser") < printed.index("import_images /path/to/your/photos")
        finally:
            if stack.poll() is None:
                os.killpg(stack.pid, signal.SIGINT)  # Ctrl-C in the terminal: the whole process group
                try:
                    stack.wait(timeout=60)
                except subprocess.TimeoutExpired:
                    os.killpg(stack.pid, signal.SIGKILL)
                    stack.wait()
    for name, port in ports.items():  # nothing left listening
        with socket.socket() as sock:
            assert sock.connect_ex(("127.0.0.1", port)) != 0, f"{name} ({port}) still listens after Ctrl-C"
