"""A Milvus Lite server killed and started again comes back with every collection released: a store that
searches (and reads vectors) with no load call of its own must load the collection again rather than fail
until some other process loads it (bench/soak.py saw searches answer 503 after a restart until an upload
was indexed)."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import numpy as np
import pytest
from pymilvus.exceptions import MilvusException

from retrieval_core.index.milvus_store import MilvusVectorStore
from webapp import localstack

pytestmark = pytest.mark.services
T = TypeVar("T")
RECOVERY_S = 30.0


def _eventually(read: Callable[[], T]) -> T:
    """``read()`` once the restarted server accepts connections; the last error past RECOVERY_S."""
    deadline = time.monotonic() + RECOVERY_S
    while True:
        try:
            return read()
        except MilvusException:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


def test_a_restarted_milvus_lite_server_serves_searches_without_another_load(tmp_path: Path) -> None:
    port = localstack.free_port()
    server = localstack.start_milvus(port, tmp_path / "milvus")
    store = MilvusVectorStore(f"http://127.0.0.1:{port}", "restart_test", dim=8)
    try:
        vectors = np.random.default_rng(0).standard_normal((10, 8)).astype(np.float32)
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        store.ensure_collection()
        store.upsert(list(range(10)), vectors, [1] * 10)
        store.flush()
        server.kill()  # kill -9: no clean shutdown
        server.wait()
        server = localstack.start_milvus(port, tmp_path / "milvus")
        hits = _eventually(lambda: store.search(vectors[3], k=3)[0])  # the same client, as a web process
        assert hits[0].image_id == 3
        assert set(_eventually(lambda: store.get_vectors([1, 2]))) == {1, 2}
        assert store.count() == 10
    finally:
        store.close()
        localstack.stop(server)
