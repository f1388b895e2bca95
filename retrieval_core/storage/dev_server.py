"""A throwaway S3-compatible server on loopback (moto's ``moto.server``, a dev dependency), for tests and
benchmarks: a real HTTP server in its own process, so boto3 speaks the real protocol and no client is mocked.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from typing import IO

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
    endpoint = f"http://127.0.0.1:{port}"
    # The server logs every request: to a file, since a pipe nobody reads fills up and stalls the server.
    with tempfile.TemporaryFile() as log:
        server = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
            stdout=subprocess.DEVNULL,
            stderr=log,
        )
        try:
            _wait_until_up(server, endpoint, log, timeout_s)
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


def _wait_until_up(server: subprocess.Popen[bytes], endpoint: str, log: IO[bytes], timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        if server.poll() is not None:
            log.seek(0)
            error = log.read().decode(errors="replace")
            raise RuntimeError(f"the S3 test server exited with {server.returncode}: {error[-2000:]}")
        try:
            urllib.request.urlopen(f"{endpoint}/moto-api/", timeout=1).close()
            return
        except (urllib.error.URLError, OSError):
            if time.monotonic() > deadline:
                raise RuntimeError(f"no S3 test server answered on {endpoint} in {timeout_s} s") from None
            time.sleep(0.1)
