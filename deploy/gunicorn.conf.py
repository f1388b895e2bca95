"""gunicorn settings for the web process (used by `make run` and the container image)."""

import logging
import os

workers = int(os.environ.get("WEB_WORKERS", "1"))
# gthread: more threads than SEARCH_MAX_IN_FLIGHT, so a saturated process still answers its refusals
# (503 + Retry-After, see webapp/throttling.py) and every other page at once.
threads = int(os.environ.get("WEB_THREADS", "8"))
timeout = 120
accesslog = "-"


def post_worker_init(worker: object) -> None:
    """Load the model and connect to Milvus before the first request, so no user waits for it."""
    try:
        from webapp.embeddings.services import get_active_version, get_extractor, get_store

        version = get_active_version()
        get_extractor(version.config)
        get_store(version)
    except Exception:  # a missing service must not stop the web server; the first search retries
        logging.getLogger(__name__).exception("warm-up failed")
