"""`storemon up` as a real subprocess, for the tests that drive the whole product.

Every process it starts (and their children) is remembered and ended by ``stop()``, which also
asserts that nothing was left running.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import psutil

from storemon_pipeline.settings import PROJECT_ROOT
from support.processes import free_port


class Up:
    """`storemon up` as a subprocess; every process it starts is ended by the fixture."""

    def __init__(
        self, home: Path, log: Path, args: tuple[str, ...] = (), env: dict[str, str] | None = None
    ) -> None:
        self.home = home
        self.port = free_port()
        self.api_port = free_port()
        self.log = log
        env = {
            **os.environ,
            "STOREMON_HOME": str(home),
            "STOREMON_SENSOR_INTERVAL_SECONDS": "2",
            "PYTHONUNBUFFERED": "1",
            **(env or {}),
        }
        env.pop("DAGSTER_HOME", None)
        with open(log, "ab") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "storemon_pipeline.cli", "up",
                 "--dagster-port", str(self.port), "--api-port", str(self.api_port), *args],
                stdout=out, stderr=subprocess.STDOUT, env=env, cwd=PROJECT_ROOT,
            )
        self.started = time.monotonic()
        self.seen: dict[int, psutil.Process] = {}

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    def services(self) -> dict:
        """What the supervisor says of each process (services.json)."""
        return json.loads((self.home / "services.json").read_text())["services"]

    def remember_children(self) -> None:
        try:
            for child in psutil.Process(self.process.pid).children(recursive=True):
                self.seen[child.pid] = child
        except psutil.NoSuchProcess:
            pass

    def wait_ready(self, timeout: float = 240) -> float:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.remember_children()
            if "Dagster UI:" in self.text():
                return time.monotonic() - self.started
            assert self.process.poll() is None, self.text()[-3000:]
            time.sleep(0.5)
        raise AssertionError(f"storemon up not ready:\n{self.text()[-3000:]}")

    def stop(self) -> int:
        """SIGINT twice, as an impatient Ctrl-C; then anything left of what it started is ended,
        by pid (and the test fails)."""
        self.remember_children()
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            time.sleep(0.5)
            if self.process.poll() is None:
                self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(90)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        leftovers = [p for p in self.seen.values() if p.is_running()]
        for process in leftovers:
            process.kill()
        assert not leftovers, [p.pid for p in leftovers]
        return self.process.returncode




@contextmanager
def running_up(
    home: Path, log: Path, args: tuple[str, ...] = (), env: dict[str, str] | None = None,
    timeout: float = 240,
) -> Iterator[Up]:
    """`storemon up` ready to serve; stopped with Ctrl-C at the end, leaving nothing."""
    service = Up(home, log, args, env)
    try:
        service.wait_ready(timeout)
        yield service
    finally:
        assert service.stop() == 0, service.text()[-3000:]


@contextmanager
def api_client(up: Up, timeout: float = 120) -> Iterator[httpx.Client]:
    """A client of the product's REST API, once /health says ok."""
    with httpx.Client(base_url=up.api_url, timeout=60) as client:
        deadline = time.monotonic() + timeout
        while True:
            try:
                if client.get("/health").status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "/health not ok"
            time.sleep(0.25)
        yield client
