"""Fixtures shared by the whole suite: real services (Milvus Lite server, Redis, a Celery worker)."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from PIL import Image as PILImage
from redis import Redis

from retrieval_core.datasets.synthetic import make_scene, render_view
from tests import environment
from webapp import localstack


@dataclass(frozen=True)
class LiveServices:
    redis_url: str
    milvus_uri: str


@pytest.fixture(scope="session")
def live_services() -> Iterator[LiveServices]:
    """A private Redis and Milvus Lite server for this test run, on the ports the settings point at."""
    redis = localstack.start_redis(environment.REDIS_PORT, environment.RUN_DIR / "redis")
    milvus = localstack.start_milvus(environment.MILVUS_PORT, environment.RUN_DIR / "milvus")
    try:
        yield LiveServices(os.environ["REDIS_URL"], os.environ["MILVUS_URI"])
    finally:
        localstack.stop(milvus)
        localstack.stop(redis)


@pytest.fixture(scope="session")
def milvus_standalone_uri() -> Iterator[str]:
    """Real Milvus standalone (the server a deployment's ``MILVUS_URI`` names), started on first use, so
    the vector store is checked against it as well as against Milvus Lite."""
    port = localstack.free_port()
    server = localstack.start_milvus_standalone(port, environment.RUN_DIR / "milvus-standalone")
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        localstack.stop(server, timeout=20)


@pytest.fixture(params=["lite", "standalone"])
def milvus_uri(request: pytest.FixtureRequest, live_services: LiveServices) -> str:
    """Each kind of Milvus server the product runs against: the Milvus Lite server of `make run`, then
    Milvus standalone (compose and Kubernetes run standalone or cluster)."""
    if request.param == "lite":
        return live_services.milvus_uri
    return str(request.getfixturevalue("milvus_standalone_uri"))


def _database_url_of_test_db() -> str:
    from django.db import connection

    params = connection.settings_dict
    if params["ENGINE"].endswith("sqlite3"):
        return f"sqlite:///{params['NAME']}"
    user = params.get("USER") or ""
    password = f":{params['PASSWORD']}" if params.get("PASSWORD") else ""
    auth = f"{user}{password}@" if user else ""
    host = f"{params.get('HOST') or '127.0.0.1'}:{params.get('PORT') or 5432}"
    return f"postgres://{auth}{host}/{params['NAME']}"


@pytest.fixture(scope="session")
def celery_worker_process(
    live_services: LiveServices, django_db_setup: None, django_db_blocker: object
) -> Iterator[subprocess.Popen]:
    """A real ``celery worker`` process consuming both queues, against the test database."""
    log_path = environment.RUN_DIR / "worker.log"
    env = {
        **os.environ,
        "DATABASE_URL": _database_url_of_test_db(),
        "WORKER_METRICS_PORT": str(environment.WORKER_METRICS_PORT),
    }
    with open(log_path, "ab") as log:
        worker = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "workers",
                "worker",
                "-Q",
                "gpu,cpu",
                "-P",
                "solo",
                "-c",
                "1",
                "--loglevel",
                "INFO",
                "-n",
                "test@%h",
            ],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=Path(__file__).resolve().parent.parent,
        )
    try:
        from workers.tasks.cpu import ping

        assert ping.apply_async(queue="cpu").get(timeout=120) == "pong", log_path.read_text()
        yield worker
    finally:
        localstack.stop(worker, timeout=20)


def _dispatch_through(monkeypatch: pytest.MonkeyPatch, redis_url: str) -> None:
    """Dispatch sends through a Celery app configured like the real one but with this broker (and backend)."""
    from celery import Celery

    from webapp import dispatch

    app = Celery("dispatch-under-test", set_as_current=False)  # shared tasks keep using the real app
    app.config_from_object("django.conf:settings", namespace="CELERY")
    app.conf.update(broker_url=redis_url, result_backend=redis_url)
    monkeypatch.setattr(dispatch, "app", app)


@pytest.fixture
def broker_down(monkeypatch: pytest.MonkeyPatch) -> None:
    """A real broker outage (Redis on a closed port), without stopping the Redis other tests share."""
    _dispatch_through(monkeypatch, f"redis://127.0.0.1:{localstack.free_port()}/0")


@pytest.fixture
def isolated_broker(live_services: LiveServices, monkeypatch: pytest.MonkeyPatch) -> Iterator[Redis]:
    """The test Redis, but a database no worker reads: what dispatch queues there stays to be inspected
    and never runs. Yields a client of that database."""
    url = live_services.redis_url.rsplit("/", 1)[0] + "/1"
    _dispatch_through(monkeypatch, url)
    client = Redis.from_url(url)
    client.flushdb()
    yield client
    client.flushdb()
    client.close()


@pytest.fixture
def uploader_client(db: None) -> object:
    """A test client logged in as a user who may add photos and landmarks (uploads need both)."""
    from django.contrib.auth.models import Permission, User
    from django.test import Client

    user = User.objects.create_user("uploader", password="pw")
    user.user_permissions.add(*Permission.objects.filter(codename__in=["add_image", "add_landmark"]))
    client = Client()
    client.force_login(user)
    return client


def encode_jpeg(array: np.ndarray, quality: int = 90, exif: bytes | None = None) -> bytes:
    buffer = io.BytesIO()
    PILImage.fromarray(array).save(buffer, format="JPEG", quality=quality, **({"exif": exif} if exif else {}))
    return buffer.getvalue()


@pytest.fixture
def scene_photo() -> bytes:
    """A JPEG view of a generated textured scene."""
    view, _ = render_view(make_scene(7, (240, 320)), np.random.default_rng(0), out_size=(240, 320))
    return encode_jpeg(view)


@pytest.fixture
def empty_vector_store(live_services: LiveServices) -> Iterator[None]:
    """Drop every collection of the test Milvus server, so each test sees only its own vectors."""
    from pymilvus import MilvusClient
    from pymilvus.exceptions import MilvusException

    from webapp.embeddings import services

    # Milvus Lite answers a burst of gRPC keep-alive pings with GOAWAY ("too many pings"): a fresh
    # connection a moment later is accepted, so connecting is retried a few times.
    for attempt in range(5):
        try:
            client = MilvusClient(uri=live_services.milvus_uri)
            break
        except MilvusException:
            if attempt == 4:
                raise
            time.sleep(1.0)
    from webapp.reranking.scoring import clear_feature_caches

    for name in client.list_collections():
        client.drop_collection(name)
    services.clear_caches()
    clear_feature_caches()
    yield
    services.clear_caches()
    clear_feature_caches()
    client.close()


def write_query_split(root: Path, n_landmarks: int, views: int, seed: int) -> dict[str, Path]:
    """A synthetic collection under root/collection; the first view of each landmark is moved out as its
    query, so queries are new views that are not in the index. Returns {landmark name: query path}."""
    from retrieval_core.datasets.synthetic import write_collection

    collection = root / "collection"
    write_collection(collection, n_landmarks=n_landmarks, views_per_landmark=views, seed=seed)
    queries = {}
    for landmark_dir in sorted(p for p in collection.iterdir() if p.is_dir()):
        first = sorted(landmark_dir.glob("*.jpg"))[0]
        target = root / "queries" / f"{landmark_dir.name}.jpg"
        target.parent.mkdir(parents=True, exist_ok=True)
        first.rename(target)
        queries[landmark_dir.name] = target
    return queries
