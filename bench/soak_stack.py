"""The Procfile's processes run one by one, each restarted when it exits, so a benchmark can kill one.

`make run` starts the Procfile under honcho, which stops the whole stack when one process exits (a
half-stack must not look alive, tests/test_supervision.py). Deployments restart a dead process instead
(compose ``restart:``, Kubernetes). A soak that kills a worker needs the second behaviour, so this module
starts each Procfile line itself, exactly as honcho would (``bash -c``, the venv's ``bin`` first on
``PATH``, the stack's environment), each in a process group of its own, and a watcher thread starts again
whatever exits, counting the restarts. No Django import: the environment is the only configuration.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
_ASSIGNMENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=\S*$")


def procfile_commands(procfile: Path) -> dict[str, str]:
    """``name: command`` lines of a Procfile, in order."""
    commands: dict[str, str] = {}
    for line in procfile.read_text().splitlines():
        name, sep, command = line.partition(":")
        if sep and name.strip() and not name.lstrip().startswith("#"):
            commands[name.strip()] = command.strip()
    return commands


def exec_form(command: str) -> str:
    """``command`` with ``exec`` before the program (after leading ``VAR=value`` words), so the shell
    becomes the program and a signal to the recorded pid reaches the program itself (a ``kill -9`` of the
    worker kills the worker, not a shell that leaves it running)."""
    words = command.split(" ")
    lead = 0
    while lead < len(words) and _ASSIGNMENT.match(words[lead]):
        lead += 1
    return " ".join([*words[:lead], "exec", *words[lead:]])


@dataclass
class Supervised:
    name: str
    command: str
    process: subprocess.Popen[bytes] | None = None
    starts: int = 0
    exits: list[tuple[float, int]] = field(default_factory=list)  # (monotonic time, return code)


class ProcfileStack:
    """Start, kill and restart the Procfile's processes; a watcher restarts any that exits."""

    def __init__(self, procfile: Path, env: dict[str, str], log_dir: Path, names: list[str] | None = None):
        commands = procfile_commands(procfile)
        chosen = names or list(commands)
        unknown = sorted(set(chosen) - set(commands))
        if unknown:
            raise ValueError(f"not in {procfile}: {', '.join(unknown)}")
        bin_dir = Path(sys.executable).parent
        self.env = {**env, "PATH": f"{bin_dir}:{env.get('PATH', os.environ.get('PATH', ''))}"}
        self.log_dir = log_dir
        self.processes = {name: Supervised(name, commands[name]) for name in chosen}
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._watcher: threading.Thread | None = None

    def start(self, name: str) -> subprocess.Popen[bytes]:
        entry = self.processes[name]
        self.log_dir.mkdir(parents=True, exist_ok=True)
        with open(self.log_dir / f"{name}.log", "ab") as log:
            entry.process = subprocess.Popen(
                ["bash", "-c", exec_form(entry.command)],
                cwd=ROOT,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own group: a launcher's children go with it
            )
        entry.starts += 1
        return entry.process

    def start_all(self) -> None:
        for name in self.processes:
            self.start(name)
        self._watcher = threading.Thread(target=self._watch, name="supervisor", daemon=True)
        self._watcher.start()

    def _watch(self) -> None:
        """Restart whatever exited (as a deployment's restart policy does), once a second."""
        while not self._stopping.wait(1.0):
            with self._lock:
                for entry in self.processes.values():
                    if entry.process is not None and entry.process.poll() is not None:
                        entry.exits.append((time.monotonic(), entry.process.returncode))
                        self.start(entry.name)

    def kill(self, name: str, sig: signal.Signals = signal.SIGKILL) -> int:
        """Send ``sig`` to the process's group (``kill -9`` by default); the watcher restarts it. Returns
        the pid killed."""
        with self._lock:
            process = self.processes[name].process
            if process is None or process.poll() is not None:
                raise RuntimeError(f"{name} is not running")
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, sig)
            process.wait()
            pid = process.pid
            self.processes[name].exits.append((time.monotonic(), process.returncode))
            self.start(name)
            return pid

    def pid(self, name: str) -> int | None:
        process = self.processes[name].process
        return None if process is None or process.poll() is not None else process.pid

    def restarts(self) -> dict[str, int]:
        return {name: entry.starts - 1 for name, entry in self.processes.items()}

    def stop(self, timeout: float = 20.0) -> None:
        """Stop the watcher, then every process (TERM to its group, KILL after ``timeout``), last first."""
        self._stopping.set()
        if self._watcher is not None:
            self._watcher.join()
        with self._lock:
            for entry in reversed(list(self.processes.values())):
                process = entry.process
                if process is None or process.poll() is not None:
                    continue
                try:
                    os.killpg(process.pid, signal.SIGTERM)
                    process.wait(timeout)
                except subprocess.TimeoutExpired:
                    os.killpg(process.pid, signal.SIGKILL)
                    process.wait()
                except ProcessLookupError:
                    pass
                with contextlib.suppress(ProcessLookupError):  # what a launcher left behind in the group
                    os.killpg(process.pid, signal.SIGKILL)
