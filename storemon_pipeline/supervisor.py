"""Child processes that are started together, kept running, and stopped together.

`storemon up` runs the product as a few processes (code server, Dagster webserver and daemon,
REST API). A supervisor starts them, notices when one dies (a crash, the kernel's out-of-memory
killer), logs it and starts it again, waiting longer after each quick crash (1, 2, 4 … 30 s), and
writes what it sees to a small JSON file that the API's /health reads. Ctrl-C (SIGINT) or SIGTERM
stops everything, children's children included.
"""

from __future__ import annotations

import contextlib
import ctypes
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import psutil

from storemon_pipeline.engine.files import write_json_atomically
from storemon_pipeline.engine.instants import iso, utc_now

STOP_TIMEOUT_SECONDS = 30.0
# A child that lived this long before it died is restarted at once; one that dies sooner waits
# 1, 2, 4 … up to MAX_BACKOFF_SECONDS before each next start.
STABLE_AFTER_SECONDS = 60.0
MAX_BACKOFF_SECONDS = 30.0
STATE_EVERY_SECONDS = 5.0


def probe_url(url: str) -> bool:
    """Whether a GET of ``url`` answers 200 within two seconds."""
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status == 200
    except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
        return False


_PR_SET_PDEATHSIG = 1


def _stop_with_parent() -> None:
    """In the child before it runs: SIGTERM when its parent dies (Linux; elsewhere nothing)."""
    if sys.platform.startswith("linux"):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


@dataclass
class Service:
    """A child process: how to start it, and how to tell it is ready to serve."""

    name: str
    args: Sequence[str]
    ready: Callable[[], bool]
    url: str | None = None
    cwd: Path | None = None
    # called once the service is ready again after a restart (e.g. reload what depends on it)
    after_restart: Callable[[], None] | None = None
    process: subprocess.Popen | None = field(default=None, repr=False)
    state: str = "stopped"  # starting | running | waiting (to restart) | stopped
    starts: int = 0
    quick_crashes: int = 0
    started_at: float = 0.0
    restart_at: float = 0.0
    last_exit: int | None = None
    last_exit_at: str | None = None

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def as_json(self) -> dict[str, object]:
        return {
            "pid": self.process.pid if self.alive() else None,
            "state": self.state,
            "restarts": max(0, self.starts - 1),
            "quick_crashes": self.quick_crashes,
            "last_exit": self.last_exit,
            "last_exit_at": self.last_exit_at,
            "url": self.url,
        }


class Supervisor:
    """Starts the services in order, then keeps them running until told to stop."""

    def __init__(
        self,
        env: dict[str, str],
        state_file: Path,
        log: Callable[[str], None],
        chores: Sequence[tuple[float, Callable[[], None]]] = (),
    ) -> None:
        self.env = env
        self.state_file = state_file
        self.log = log
        self.services: list[Service] = []
        # (every N seconds, what to do) while watching
        self.chores = [[every, chore, 0.0] for every, chore in chores]
        self._state_written = 0.0

    # --- starting -----------------------------------------------------------------------------

    def _spawn(self, service: Service) -> None:
        # Each child in its own session: a terminal's Ctrl-C reaches only `storemon up`, which
        # then stops each child itself; and told to stop when `storemon up` dies without that
        # chance (SIGKILL), so that a new `storemon up` never meets the old one's children.
        service.process = subprocess.Popen(
            list(service.args), cwd=service.cwd, env=self.env, start_new_session=True,
            preexec_fn=_stop_with_parent,
        )
        service.starts += 1
        service.started_at = time.monotonic()
        service.state = "starting"

    def start(self, service: Service, timeout: float) -> None:
        """Start a service and wait until it is ready (RuntimeError/TimeoutError if not)."""
        self.log(f"starting {service.name}: {' '.join(service.args[:4])} ...")
        self.services.append(service)
        self._spawn(service)
        deadline = time.monotonic() + timeout
        while not service.ready():
            if not service.alive():
                raise RuntimeError(f"{service.name} exited during start-up")
            if time.monotonic() > deadline:
                raise TimeoutError(f"{service.name} not ready after {timeout:.0f} s")
            time.sleep(0.5)
        service.state = "running"
        self.log(f"{service.name} ready" + (f" at {service.url}" if service.url else ""))
        self.write_state()

    # --- watching -----------------------------------------------------------------------------

    def watch(self) -> int:
        """Keep the services running until Ctrl-C or SIGTERM (KeyboardInterrupt): returns 0."""
        try:
            while True:
                for service in self.services:
                    self._tend(service)
                now = time.monotonic()
                for chore in self.chores:
                    every, work, last = chore
                    if now - last >= every:
                        chore[2] = now
                        try:
                            work()
                        except Exception as exc:  # a chore must never stop the watch
                            self.log(f"{getattr(work, '__name__', 'chore')} failed: {exc}")
                if now - self._state_written >= STATE_EVERY_SECONDS:
                    self.write_state()
                time.sleep(0.5)
        except KeyboardInterrupt:
            self.log("stopping")
            return 0

    def _tend(self, service: Service) -> None:
        now = time.monotonic()
        if service.state in ("starting", "running") and not service.alive():
            code = service.process.returncode if service.process else None
            lived = now - service.started_at
            service.quick_crashes = service.quick_crashes + 1 if lived < STABLE_AFTER_SECONDS else 1
            delay = min(2 ** (service.quick_crashes - 1), MAX_BACKOFF_SECONDS)
            service.last_exit, service.last_exit_at = code, iso(utc_now())
            service.state, service.restart_at = "waiting", now + delay
            self.log(
                f"{service.name} exited with code {code} after {lived:.0f} s; restarting in "
                f"{delay:.0f} s (restart {service.starts})"
            )
            self.write_state()
        elif service.state == "waiting" and now >= service.restart_at:
            # what the dead child started itself (a run worker of the code server) goes on
            self._spawn(service)
            self.log(f"{service.name} started again (pid {service.process.pid})")
            self.write_state()
        elif service.state == "starting" and service.ready():
            service.state = "running"
            self.log(f"{service.name} ready again")
            if service.after_restart is not None and service.starts > 1:
                try:
                    service.after_restart()
                except Exception as exc:
                    self.log(f"after restarting {service.name}: {exc}")
            self.write_state()

    def write_state(self) -> None:
        """``services.json``: what each child is doing, with a heartbeat for /health."""
        self._state_written = time.monotonic()
        write_json_atomically(
            self.state_file,
            {
                "updated": iso(utc_now()),
                "heartbeat_seconds": STATE_EVERY_SECONDS,
                "services": {s.name: s.as_json() for s in self.services},
            },
        )

    # --- stopping -----------------------------------------------------------------------------

    def stop(self, timeout: float = STOP_TIMEOUT_SECONDS) -> None:
        """Stop every child, last started first, and whatever they left running: SIGINT (a
        graceful stop for the Dagster processes and uvicorn), then SIGTERM, then SIGKILL."""
        for service in reversed(self.services):
            process = service.process
            if process is None:
                continue
            descendants = _descendants(process.pid)
            for sig, wait in (
                (signal.SIGINT, timeout),
                (signal.SIGTERM, 5.0),
                (signal.SIGKILL, 5.0),
            ):
                if process.poll() is not None:
                    break
                process.send_signal(sig)
                try:
                    process.wait(wait)
                except subprocess.TimeoutExpired:
                    self.log(f"{service.name} did not stop on {sig.name}")
            descendants += _descendants(process.pid)
            _end_processes(descendants)
            service.state = "stopped"
        if self.services:
            self.write_state()
        self.services.clear()


def _descendants(pid: int) -> list[psutil.Process]:
    try:
        return psutil.Process(pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return []


def _end_processes(processes: list[psutil.Process]) -> None:
    alive = [p for p in processes if p.is_running()]
    for process in alive:
        with contextlib.suppress(psutil.NoSuchProcess):
            process.terminate()
    _, still = psutil.wait_procs(alive, timeout=5)
    for process in still:
        with contextlib.suppress(psutil.NoSuchProcess):
            process.kill()
