"""The REST API under load, as ``storemon bench`` measures it (its ``load`` phase): a real
uvicorn serving a state folder on 127.0.0.1, driven over loopback by concurrent HTTP clients
for a bounded time, then stopped.

Three runs, one after another: one client asking for timelines (what one timeline costs
through HTTP), ``clients`` clients asking for timelines of random stores (the page's store view
under load), and ``clients`` clients downloading a finished report's CSV. Each request's
latency is measured from its send to the end of its body; a run's rate counts the answers of
200 over the run's time. The clients share the machine with the server (they cost it about
1.5 ms of CPU per request).
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

import httpx

START_SECONDS = 60.0  # the most a server may take to answer its first request
STOP_SECONDS = 10.0  # SIGTERM, then SIGKILL after this
WARM_UP_REQUESTS = 2  # per client, before a run's clock starts (the file opened, code warm)


@dataclass(frozen=True)
class LoadRun:
    """What one run of clients got."""

    clients: int
    seconds: float  # from the first timed request to the last answer
    requests: int
    ok: int  # answered 200
    errors: int  # any other status, or no answer
    per_second: float  # ok / seconds
    median_s: float | None
    p99_s: float | None
    max_s: float | None

    def describe(self, what: str) -> str:
        return (
            f"{self.per_second:,.1f} {what}/s with {self.clients} client(s), median "
            f"{_ms(self.median_s)}, p99 {_ms(self.p99_s)}, {self.errors} error(s)"
        )


@dataclass(frozen=True)
class ApiServer:
    url: str
    pid: int


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def serve_api(home: Path, log_path: Path) -> Iterator[ApiServer]:
    """``python -m storemon_api`` on a free port of 127.0.0.1 for the state folder ``home``
    (its own process group; Dagster at a port where nothing listens: the timelines and the
    finished reports need no Dagster), until the block ends."""
    port = free_port()
    env = {**os.environ, "STOREMON_HOME": str(home)}
    command = [
        sys.executable, "-m", "storemon_api", "--host", "127.0.0.1", "--port", str(port),
        "--dagster-url", f"http://127.0.0.1:{free_port()}",
    ]
    with open(log_path, "ab") as log:
        server = subprocess.Popen(
            command, env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        url = f"http://127.0.0.1:{port}"
        _wait_until_serving(server, url, log_path)
        yield ApiServer(url, server.pid)
    finally:
        _stop(server)


def peak_rss_mb(pid: int) -> float | None:
    """A live process's peak resident memory (Linux VmHWM), or None."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def drive(
    url: str,
    path_for: Callable[[random.Random], str],
    *,
    clients: int,
    seconds: float,
    seed: int = 0,
) -> LoadRun:
    """``clients`` concurrent clients, each an ``httpx.Client`` (one connection) on a thread of
    its own, asking ``path_for(its random generator)`` again and again for ``seconds`` (after a
    short warm-up). Threads, not asyncio: httpx's synchronous client costs half the CPU per
    request on this loopback, which the server shares."""
    latencies: list[float] = []
    statuses: list[int | None] = []
    warm = threading.Barrier(clients + 1)
    start = threading.Barrier(clients + 1)
    clock: dict[str, float] = {}

    def client_loop(k: int) -> None:
        rng = random.Random(seed * 1000 + k)
        with httpx.Client(base_url=url, timeout=30.0) as client:

            def ask() -> tuple[int | None, float]:
                began = time.perf_counter()
                try:
                    status: int | None = client.get(path_for(rng)).status_code
                except httpx.HTTPError:
                    status = None
                return status, time.perf_counter() - began

            for _ in range(WARM_UP_REQUESTS):
                ask()
            warm.wait()
            start.wait()
            while time.perf_counter() < clock["deadline"]:
                status, latency = ask()
                statuses.append(status)  # list.append is atomic under the GIL
                latencies.append(latency)

    threads = [threading.Thread(target=client_loop, args=(k,), daemon=True)
               for k in range(clients)]
    for thread in threads:
        thread.start()
    warm.wait()
    clock["began"] = time.perf_counter()
    clock["deadline"] = clock["began"] + seconds
    start.wait()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - clock["began"]
    ok = sum(1 for status in statuses if status == 200)
    ordered = sorted(latencies)
    return LoadRun(
        clients=clients,
        seconds=elapsed,
        requests=len(statuses),
        ok=ok,
        errors=len(statuses) - ok,
        per_second=ok / elapsed if elapsed else 0.0,
        median_s=_quantile(ordered, 0.5),
        p99_s=_quantile(ordered, 0.99),
        max_s=ordered[-1] if ordered else None,
    )


def run_load(
    home: Path,
    store_ids: Sequence[str],
    report_csv: Path | None,
    *,
    clients: int,
    seconds: float,
    single_seconds: float,
    log_path: Path,
) -> dict:
    """The three runs against a server of ``home``: one client's timelines, ``clients``
    clients' timelines, ``clients`` clients' downloads of ``report_csv`` (made a finished
    report of ``home`` first; skipped without it). Returns each run's figures and the
    server's peak memory."""
    report_id = None if report_csv is None else _finished_report(home, report_csv)

    def timeline(rng: random.Random) -> str:
        return f"/stores/{rng.choice(store_ids)}/timeline"

    result: dict = {}
    with serve_api(home, log_path) as server:
        single = drive(server.url, timeline, clients=1, seconds=single_seconds, seed=1)
        many = drive(server.url, timeline, clients=clients, seconds=seconds, seed=2)
        result.update(single=asdict(single), timelines=asdict(many))
        if report_id is not None:
            csv = drive(
                server.url, lambda _rng: f"/reports/{report_id}/csv", clients=clients,
                seconds=single_seconds, seed=3,
            )
            result["csv"] = asdict(csv)
        result["server_peak_rss_mb"] = peak_rss_mb(server.pid)
    details = [many.describe("timelines"), f"one client {_ms(single.median_s)} a timeline"]
    if "csv" in result:
        details.append(LoadRun(**result["csv"]).describe("CSV downloads"))
    result["detail"] = "; ".join(details)
    return result


def _finished_report(home: Path, csv_path: Path) -> str:
    """``csv_path`` made a finished report of the state folder (its CSV and sidecar, as a run
    leaves them): what ``GET /reports/{id}/csv`` serves."""
    from storemon_pipeline.engine.state import (
        read_latest_poll,
        report_csv_path,
        write_report_sidecar,
    )

    report_id = str(uuid.uuid4())
    reports_dir = home / "reports"
    reports_dir.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(csv_path, report_csv_path(reports_dir, report_id))
    with open(csv_path, "rb") as handle:
        stores = sum(1 for _ in handle) - 1
    latest = read_latest_poll(home)
    write_report_sidecar(
        reports_dir, report_id, as_of=latest, stores=stores, partition=None, latest_poll=latest
    )
    return report_id


def _wait_until_serving(server: subprocess.Popen, url: str, log_path: Path) -> None:
    deadline = time.monotonic() + START_SECONDS
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(
                f"the API exited with {server.returncode}: "
                + log_path.read_text(errors="replace")[-2000:]
            )
        try:
            if httpx.get(f"{url}/openapi.json", timeout=2.0).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"the API did not answer within {START_SECONDS:g} s (log: {log_path})")


def _stop(server: subprocess.Popen) -> None:
    """SIGTERM the server's group (uvicorn finishes its requests), SIGKILL past the wait."""
    for sig, wait in ((signal.SIGTERM, STOP_SECONDS), (signal.SIGKILL, STOP_SECONDS)):
        if server.poll() is not None:
            return
        try:
            os.killpg(server.pid, sig)
        except ProcessLookupError:
            return
        try:
            server.wait(wait)
            return
        except subprocess.TimeoutExpired:
            continue


def _quantile(ordered: Sequence[float], q: float) -> float | None:
    """The nearest-rank quantile of sorted values."""
    if not ordered:
        return None
    return ordered[min(len(ordered) - 1, max(0, int(q * len(ordered) + 0.5) - 1))]


def _ms(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds * 1000:,.0f} ms"
