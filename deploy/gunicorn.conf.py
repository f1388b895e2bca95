"""gunicorn settings for the web process (used by `make run` and the container image)."""

import logging
import os
import shutil
import sys
import tempfile

workers = int(os.environ.get("WEB_WORKERS", "1"))
# gthread: more threads than SEARCH_MAX_IN_FLIGHT, so a saturated process still answers its refusals
# (503 + Retry-After, see webapp/throttling.py) and every other page at once.
threads = int(os.environ.get("WEB_THREADS", "8"))
timeout = 120
accesslog = "-"
# The default line and the request id (webapp/request_id.py) that ties it to the application's log lines.
access_log_format = '%(h)s %(l)s %(u)s %(t)s "%(r)s" %(s)s %(b)s "%(f)s" "%(a)s" %(D)sus %({x-request-id}o)s'

# Prometheus multiprocess mode (webapp/metrics.py): each worker process writes its metrics to files here and
# /metrics adds them all up, whichever process answers the scrape. The folder is this server's alone (never
# a shared volume) and starts empty: values of a previous run must not add up with this one's.
METRICS_DIR = os.environ.setdefault("PROMETHEUS_MULTIPROC_DIR", tempfile.mkdtemp(prefix="landmarks-metrics-"))


# How often (ms) a thread running Python must hand the GIL to a waiting one. A search holds the GIL in its
# Python parts; a refusal needs it back after each recv() of the photo it drains and for its reply, waiting
# up to this long each time. Side by side under a load average of 20-28 (bench/load.py, 50 clients, two
# rounds of 30 s): refusal p95 185 / 123 ms with Python's 5 ms, 123 / 103 ms with 0.5 ms.
GIL_SWITCH_MS = float(os.environ.get("WEB_GIL_SWITCH_MS", "0.5"))


def post_worker_init(worker: object) -> None:
    """Hand the GIL over quickly (GIL_SWITCH_MS, not a gunicorn setting); load the model and connect to
    Milvus before the first request, so no user waits for it."""
    sys.setswitchinterval(GIL_SWITCH_MS / 1000)
    try:
        from webapp.embeddings.services import get_active_version, get_extractor, get_store

        version = get_active_version()
        get_extractor(version.config)
        get_store(version)
    except Exception:  # a missing service must not stop the web server; the first search retries
        logging.getLogger(__name__).exception("warm-up failed")


def on_starting(server: object) -> None:
    shutil.rmtree(METRICS_DIR, ignore_errors=True)
    os.makedirs(METRICS_DIR, exist_ok=True)


def child_exit(server: object, worker: object) -> None:
    """A worker process that exits leaves its counters (they still count) but not its live gauges."""
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(getattr(worker, "pid", 0))  # type: ignore[no-untyped-call]
