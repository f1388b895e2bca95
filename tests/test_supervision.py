"""`make run` (honcho over the Procfile): one process dying stops the whole stack with a clear message,
never a half-stack that looks alive."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from redis import Redis

from webapp import front, localstack

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


@pytest.mark.skipif(front.nginx_binary() is None, reason="nginx is not installed (apt install nginx)")
def test_the_front_runs_in_the_foreground_under_honcho_and_its_death_stops_the_stack(tmp_path: Path) -> None:
    """The Procfile's front is nginx itself (webapp.front execs it, in the foreground): it serves on
    FRONT_PORT (502 with nothing behind it), and when it ends the stack stops like after any other process,
    leaving nothing on its port."""
    front_port, web_port = localstack.free_port(), localstack.free_port()
    bin_dir = Path(sys.executable).parent
    env = {
        **os.environ,
        "PATH": f"{bin_dir}:{os.environ['PATH']}",
        "VAR_DIR": str(tmp_path),
        "FRONT_HOST": "127.0.0.1",
        "FRONT_PORT": str(front_port),
        "WEB_PORT": str(web_port),
    }
    stack = subprocess.Popen(
        [str(bin_dir / "honcho"), "-f", "Procfile", "start", "front"],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        localstack.wait_for_port(front_port, None, timeout=30)
        with pytest.raises(urllib.error.HTTPError) as refused:  # nginx answers; nothing behind it
            urllib.request.urlopen(f"http://127.0.0.1:{front_port}/healthz/", timeout=10)
        assert refused.value.code == 502
        master = int((tmp_path / "front" / "nginx.pid").read_text())
        os.kill(master, signal.SIGQUIT)  # nginx ends (its workers with it), as after a fatal error
        output, _ = stack.communicate(timeout=60)
    finally:
        if stack.poll() is None:
            stack.kill()
            stack.wait()
    assert "front.1 stopped" in output, output
    assert not localstack._listening(front_port)
