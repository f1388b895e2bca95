"""A throwaway S3-compatible server on loopback (moto's ``moto.server``, a dev dependency), for tests and
benchmarks: a real HTTP server in its own process, so boto3 speaks the real protocol and no client is mocked.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager

from retrieval_core.storage.s3 import S3Config

__all__ = ["local_s3_server"]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def local_s3_server(bucket: str = "landmarks", *, timeout_s: float = 30.0) -> Iterator[S3Config]:
    """Start ``python -m moto.server`` on a free loopback port; yields an ``S3Config`` for ``bucket``
    (created on first use). The server and all it stored are gone when the block ends."""
    port = _free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    endpoint = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout_s
        while True:
            if server.poll() is not None:
                error = server.stderr.read().decode(errors="replace") if server.stderr else ""
                raise RuntimeError(f"the S3 test server exited with {server.returncode}: {error[-2000:]}")
            try:
                urllib.request.urlopen(f"{endpoint}/moto-api/", timeout=1).close()
                break
            except (urllib.error.URLError, OSError):
                if time.monotonic() > deadline:
                    message = f"the S3 test server did not answer on {endpoint} in {timeout_s} s"
                    raise RuntimeError(message) from None
                time.sleep(0.1)
        yield S3Config(
            bucket=bucket,
            endpoint_url=endpoint,
            access_key_id="testing",
            secret_access_key="testing",
            create_bucket=True,
        )
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        if server.stderr:
            server.stderr.close()
