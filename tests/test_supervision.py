"""`make run` (honcho over the Procfile): one process dying stops the whole stack with a clear message,
never a half-stack that looks alive."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from redis import Redis

from webapp import localstack

ROOT = Path(__file__).resolve().parent.parent


def test_a_dead_process_stops_the_stack_with_a_clear_message(tmp_path: Path) -> None:
    port = localstack.free_port()
    bin_dir = Path(sys.executable).parent
    env = {
        **os.environ,
        "PATH": f"{bin_dir}:{os.environ['PATH']}",
        "VAR_DIR": str(tmp_path),
        "REDIS_PORT": str(port),
        "REDIS_URL": f"redis://127.0.0.1:{port}/0",
    }
    stack = subprocess.Popen(
        [str(bin_dir / "honcho"), "-f", "Procfile", "start", "redis", "beat"],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        localstack.wait_for_port(port, stack)
        pid = int(Redis(port=port).info("server")["process_id"])
        time.sleep(2)  # let beat start too
        os.kill(pid, signal.SIGKILL)
        output, _ = stack.communicate(timeout=60)
    finally:
        if stack.poll() is None:
            stack.kill()
            stack.wait()
    assert stack.returncode != 0
    assert "redis.1 stopped (rc=137)" in output, output  # killed: 128 + 9
    assert "sending SIGTERM to beat.1" in output and "beat.1 stopped" in output, output
