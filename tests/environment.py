"""Loaded with ``-p tests.environment`` before Django reads its settings: points every path and service
of the test run at private, throw-away locations (free ports, a temporary folder).

The processes themselves start lazily (see the ``live_services`` fixture), so unit tests pay nothing.
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from pathlib import Path

from webapp.localstack import free_port

RUN_DIR = Path(tempfile.mkdtemp(prefix="landmarks-test-"))
(RUN_DIR / "static").mkdir()
if not os.environ.get("KEEP_TEST_RUN_DIR"):  # set it to keep logs, screenshots and data for debugging
    atexit.register(shutil.rmtree, RUN_DIR, ignore_errors=True)
REDIS_PORT = free_port()
MILVUS_PORT = free_port()
WORKER_METRICS_PORT = free_port()  # the suite's Celery worker serves its metrics here (tests/conftest.py)

os.environ.update(
    {
        "VAR_DIR": str(RUN_DIR),
        "MEDIA_ROOT": str(RUN_DIR / "media"),
        "SQLITE_TEST_NAME": str(RUN_DIR / "test.sqlite3"),
        "REDIS_URL": f"redis://127.0.0.1:{REDIS_PORT}/0",
        "MILVUS_URI": f"http://127.0.0.1:{MILVUS_PORT}",
        "MILVUS_COLLECTION_PREFIX": "test",
        # Small inputs keep the CPU-only suite fast; production uses 384.
        "EMBEDDING_IMAGE_SIZE": os.environ.get("TEST_EMBEDDING_IMAGE_SIZE", "224"),
        "TORCH_THREADS": "2",
        "SECRET_KEY": "test-only",
        "UPLOAD_MAX_BYTES": str(2 * 1024 * 1024),
        "IMAGE_MAX_PIXELS": str(40_000_000),
        "INDEX_TASK_BATCH": "8",
        "SEARCH_RATE_LIMIT": "0",  # one client searches a lot here; tests/webapp/test_throttling.py sets it
    }
)
os.environ.setdefault("DATABASE_URL", f"sqlite:///{RUN_DIR / 'landmarks.sqlite3'}")
