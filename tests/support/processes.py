"""Start and stop server processes for tests, leaving nothing behind.

Each process starts in its own session (process group); stopping it signals the group and then
every descendant still alive (Dagster's code servers and run workers), SIGTERM first, SIGKILL
after a grace period.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import httpx
import psutil


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Process:
    """One server process with its output in a log file."""

    def __init__(
        self, name: str, argv: Sequence[str], *, env: Mapping[str, str], cwd: Path, log_dir: Path
    ) -> None:
        self.name = name
        self.log_path = log_dir / f"{name}.log"
        self._log = self.log_path.open("ab")
        self.popen = subprocess.Popen(
            list(argv),
            env=dict(env),
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    @property
    def alive(self) -> bool:
        return self.popen.poll() is None

    def log_tail(self, chars: int = 4000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    def stop(self, grace: float = 15.0) -> None:
        """SIGTERM the group and all descendants, wait, then SIGKILL whatever is left."""
        try:
            tree = [psutil.Process(self.popen.pid), *psutil.Process(self.popen.pid).children(True)]
        except psutil.NoSuchProcess:
            tree = []
        for sig in (signal.SIGTERM, signal.SIGKILL):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.popen.pid, sig)
            for proc in tree:
                with contextlib.suppress(psutil.NoSuchProcess):
                    proc.send_signal(sig)
            _, alive = psutil.wait_procs(tree, timeout=grace if sig == signal.SIGTERM else 5)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.popen.wait(timeout=1 if alive else grace)
            if not alive and self.popen.poll() is not None:
                break
        self._log.close()


def wait_until(
    what: str,
    check: Callable[[], bool],
    *,
    timeout: float,
    processes: Sequence[Process] = (),
    interval: float = 0.5,
) -> None:
    """Poll ``check`` until true; fail early (with logs) if a process died."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for proc in processes:
            if not proc.alive:
                tail = proc.log_tail()
                raise RuntimeError(f"{proc.name} exited while waiting for {what}:\n{tail}")
        try:
            if check():
                return
        except (httpx.HTTPError, OSError, ValueError, KeyError):
            pass
        time.sleep(interval)
    logs = "\n".join(f"--- {p.name}\n{p.log_tail()}" for p in processes)
    raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what}\n{logs}")
