"""A private stack for fault tests: its own Redis (AOF) and Milvus Lite server, a Celery worker and a beat
with short reconcile intervals, each of which a test may kill or restart. Nothing here is shared with the
rest of the suite, so breaking it breaks no other test."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from pymilvus import MilvusClient
from redis import Redis

from tests import environment
from tests.conftest import _database_url_of_test_db, _dispatch_through
from webapp import localstack

ROOT = Path(__file__).resolve().parents[2]
# Short enough that a test sees recovery within a minute or two; production defaults are 300 / 600 / 600 s.
FAULT_SETTINGS = {
    "RECONCILE_INTERVAL_SECONDS": "3",
    "RECONCILE_STALE_SECONDS": "15",
    "CELERY_VISIBILITY_TIMEOUT": "30",
}


class FaultStack:
    """Processes a test can kill (``kill -9``), stop and start again on the same ports and data."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.redis_port, self.milvus_port = localstack.free_port(), localstack.free_port()
        self.redis_url = f"redis://127.0.0.1:{self.redis_port}/0"
        self.milvus_uri = f"http://127.0.0.1:{self.milvus_port}"
        self.redis: subprocess.Popen | None = None
        self.milvus: subprocess.Popen | None = None
        self.worker: subprocess.Popen | None = None
        self.beat: subprocess.Popen | None = None
        self._client: MilvusClient | None = None
        self.env = {
            **os.environ,
            **FAULT_SETTINGS,
            "DATABASE_URL": _database_url_of_test_db(),
            "REDIS_URL": self.redis_url,
            "MILVUS_URI": self.milvus_uri,
        }

    def start_redis(self) -> None:
        self.redis = localstack.start_redis(self.redis_port, self.root / "redis")

    def start_milvus(self) -> None:
        self.milvus = localstack.start_milvus(self.milvus_port, self.root / "milvus")

    def _celery(self, *args: str, log: str) -> subprocess.Popen:
        with open(self.root / log, "ab") as handle:
            return subprocess.Popen(
                [sys.executable, "-m", "celery", "-A", "workers", *args, "--loglevel", "INFO"],
                env=self.env,
                stdout=handle,
                stderr=subprocess.STDOUT,
                cwd=ROOT,
            )

    def start_worker(self) -> None:
        self.worker = self._celery(
            "worker", "-Q", "gpu,cpu", "-P", "solo", "-c", "1", "-n", f"fault-{time.monotonic_ns()}@%h",
            log="worker.log",
        )  # fmt: skip

    def start_beat(self) -> None:
        self.beat = self._celery("beat", "--schedule", str(self.root / "celerybeat-schedule"), log="beat.log")

    def kill_worker(self) -> None:
        assert self.worker is not None
        self.worker.send_signal(signal.SIGKILL)
        self.worker.wait()

    def milvus_client(self) -> MilvusClient:
        """One client for the test's polling (a new connection per poll makes the server refuse pings)."""
        if self._client is None:
            self._client = MilvusClient(uri=self.milvus_uri)
        return self._client

    def forget_client(self) -> None:
        """Drop the polling client (after a server restart its channel may stay broken)."""
        client, self._client = self._client, None
        if client is not None:
            with contextlib.suppress(Exception):  # already broken
                client.close()

    def reset(self) -> None:
        """Empty queues, lock and collections left by an earlier test."""
        Redis.from_url(self.redis_url).flushdb()
        client = self.milvus_client()
        for name in client.list_collections():
            client.drop_collection(name)

    def logs(self) -> str:
        paths = sorted(self.root.glob("*.log"))
        return "\n".join(f"--- {path.name}\n{path.read_text(errors='replace')[-4000:]}" for path in paths)

    def stop(self) -> None:
        if self._client is not None:
            self._client.close()
        for process in (self.beat, self.worker, self.milvus, self.redis):
            if process is not None:
                localstack.stop(process, timeout=20)


@pytest.fixture(scope="module")
def fault_stack(django_db_setup: None, django_db_blocker: object) -> Iterator[FaultStack]:
    root = environment.RUN_DIR / "faults"
    root.mkdir(exist_ok=True)
    stack = FaultStack(root)
    try:
        stack.start_redis()
        stack.start_milvus()
        stack.start_worker()
        stack.start_beat()
        yield stack
    finally:
        stack.stop()


@pytest.fixture
def stack(fault_stack: FaultStack, monkeypatch: pytest.MonkeyPatch, settings) -> FaultStack:
    """The fault stack, reset, with this test process dispatching to its Redis."""
    fault_stack.reset()
    _dispatch_through(monkeypatch, fault_stack.redis_url)
    settings.REDIS_URL, settings.MILVUS_URI = fault_stack.redis_url, fault_stack.milvus_uri
    if fault_stack.worker is None or fault_stack.worker.poll() is not None:
        fault_stack.start_worker()
    return fault_stack


def wait_until(
    predicate: Callable[[], bool],
    timeout: float,
    what: str,
    stack: FaultStack,
    poll_s: float = 2.0,
    describe: Callable[[], str] = str,
) -> None:
    """Poll ``predicate``; past ``timeout``, fail with ``describe()`` (what is still missing) and the logs."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(poll_s)
    raise AssertionError(f"{what} not within {timeout:.0f} s: {describe()}\n{stack.logs()}")
