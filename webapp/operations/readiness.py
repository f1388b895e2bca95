"""Readiness: whether this web process can serve searches now (``/readyz``), apart from liveness
(``/healthz/``: the process answers at all).

A load balancer or Kubernetes sends traffic only to a ready server and restarts only a dead one: a Milvus or
Redis outage takes the server out of rotation (every search would fail) but must not restart it (a restart
mends nothing and loses the loaded model).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from django.conf import settings
from django.db import DatabaseError, connection
from pymilvus import MilvusClient
from pymilvus.exceptions import MilvusException
from redis import Redis
from redis.exceptions import RedisError

from webapp.embeddings.models import EmbeddingModelVersion
from webapp.metrics import MILVUS_ERRORS

logger = logging.getLogger(__name__)

OK = "ok"
TIMEOUT_S = 2.0  # per service: a probe must answer well within its own timeout (deploy/k8s: 10 s)


@dataclass(frozen=True)
class Readiness:
    """Each checked part with ``ok`` or what is wrong with it."""

    checks: dict[str, str]

    @property
    def ready(self) -> bool:
        return all(state == OK for state in self.checks.values())

    @property
    def failing(self) -> list[str]:
        return [part for part, state in self.checks.items() if state != OK]


def _database() -> str:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    except DatabaseError as error:
        return f"unreachable: {error}"
    return OK


def _redis() -> str:
    client = Redis.from_url(settings.REDIS_URL, socket_timeout=TIMEOUT_S, socket_connect_timeout=TIMEOUT_S)
    try:
        client.ping()
    except RedisError as error:
        return f"unreachable: {error}"
    finally:
        client.close()
    return OK


def _milvus(collection: str | None) -> tuple[str, str]:
    """(Milvus, the active collection): reachable, and the active model's collection exists. Without an
    active model yet (nothing imported) there is no collection to expect."""
    try:
        # A client per probe, closed after: an idle cached one keeps pinging the server (see the reconciler).
        client = MilvusClient(uri=settings.MILVUS_URI, token=settings.MILVUS_TOKEN, timeout=TIMEOUT_S)
        try:
            exists = client.has_collection(collection, timeout=TIMEOUT_S) if collection else None
        finally:
            client.close()
    except (MilvusException, ConnectionError, TimeoutError) as error:
        MILVUS_ERRORS.labels("readiness").inc()
        return f"unreachable: {error}", "unknown: Milvus unreachable"
    if exists is None:
        return OK, OK
    return OK, OK if exists else f"missing: {collection}"


def _active_collection() -> str | None:
    version = EmbeddingModelVersion.objects.filter(is_active=True).only("collection_name").first()
    return None if version is None else version.collection_name


def check_readiness() -> Readiness:
    """Database, Redis, Milvus and the active model's collection; never raises."""
    checks = {"database": _database(), "redis": _redis()}
    collection: str | None = None
    if checks["database"] == OK:
        try:
            collection = _active_collection()
        except DatabaseError as error:
            checks["database"] = f"unreachable: {error}"
    checks["milvus"], checks["collection"] = _milvus(collection)
    result = Readiness(checks)
    if not result.ready:
        logger.warning("not ready: %s", "; ".join(f"{part} {checks[part]}" for part in result.failing))
    return result
