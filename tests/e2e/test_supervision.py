"""`storemon up` keeps the product up by itself: real processes, killed for real.

One `storemon up` on a temporary state folder (the sample data), then, in order: the code
server, the webserver, the daemon and the API are killed with SIGKILL and come back; a run whose
worker is killed is marked failed and frees the queue; a child that keeps crashing waits longer
each time and /health says so; Ctrl-C stops everything (Up.stop asserts nothing is left).
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx
import psutil
import pytest
from support.faults import held_open
from support.stack import wait_for_report
from support.up import Up, api_client, running_up

RESTART_WITHIN = 30  # seconds, the bound
REPORT_TIMEOUT = 180


def wait(what: str, condition: Callable[[], object], timeout: float) -> object:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            found = condition()
        except (httpx.HTTPError, OSError, KeyError, ValueError):
            found = None
        if found:
            return found
        time.sleep(0.25)
    raise AssertionError(f"not within {timeout:.0f} s: {what}")


@pytest.fixture(scope="module")
def up(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Up]:
    root = tmp_path_factory.mktemp("supervised")
    with running_up(root / "state", root / "up.log") as service:
        yield service


@pytest.fixture(scope="module")
def api(up: Up) -> Iterator[httpx.Client]:
    with api_client(up) as client:
        yield client


def kill(up: Up, name: str) -> int:
    pid = up.services()[name]["pid"]
    os.kill(pid, signal.SIGKILL)
    return pid


def back(up: Up, name: str, old_pid: int) -> bool:
    service = up.services()[name]
    return service["state"] == "running" and service["pid"] not in (None, old_pid)


def fresh_report(api: httpx.Client) -> dict:
    answer = api.post("/trigger_report", params={"fresh": "true"})
    assert answer.status_code == 202, answer.text
    return wait_for_report(api, answer.json()["report_id"], REPORT_TIMEOUT)


def test_a_killed_code_server_comes_back_and_reports_work(up, api):
    old = kill(up, "code-server")
    started = time.monotonic()
    wait("the code server back", lambda: back(up, "code-server", old), RESTART_WITHIN)
    assert "code-server exited with code -9" in up.text()
    assert fresh_report(api)["status"] == "Complete"
    print(f"\ncode server killed -> a report Complete: {time.monotonic() - started:.1f} s")


@pytest.mark.parametrize("name", ["webserver", "daemon", "api"])
def test_killed_services_come_back(up, api, name):
    old = kill(up, name)
    wait(f"the {name} back", lambda: back(up, name, old), RESTART_WITHIN)
    wait("/health ok", lambda: api.get("/health").status_code == 200, 90)
    assert f"{name} exited with code -9" in up.text()


def _worker_of(up: Up) -> psutil.Process | None:
    """The run worker: a child of the code server (Dagster's default run launcher)."""
    code_server = psutil.Process(up.services()["code-server"]["pid"])
    workers = [p for p in code_server.children() if "resource_tracker" not in " ".join(p.cmdline())]
    return workers[0] if workers else None


def test_a_run_orphaned_by_dead_processes_is_failed_and_the_queue_goes_on(up, api):
    """A run's worker waits for the DuckDB file (held by another process); the code server that
    launched it is killed, then the worker: nobody is left to say the run ended. `storemon up`
    marks it failed within a bounded time, its pool slot is free, and ten more reports end."""
    with held_open(up.home / "storemon.duckdb"):
        answer = api.post("/trigger_report", params={"fresh": "true"}).json()["report_id"]
        worker = wait("the run's worker", lambda: _worker_of(up), 60)
        wait("the run STARTED", lambda: api.get(f"/reports/{answer}").json()["dagster_status"]
             == "STARTED", 60)
        kill(up, "code-server")
        assert worker.is_running()  # the worker outlives the code server
        worker.kill()
        killed = time.monotonic()
        failed = wait("the run failed", lambda: (
            status := api.get(f"/reports/{answer}").json())["status"] == "Failed" and status,
            90)
        print(f"\nworker killed -> run Failed: {time.monotonic() - killed:.1f} s")
        assert "worker process is gone" in failed["error"]
    with ThreadPoolExecutor(10) as pool:
        finals = list(pool.map(lambda _: fresh_report(api), range(10)))
    assert [f["status"] for f in finals] == ["Complete"] * 10, [f.get("error") for f in finals]


def test_a_child_that_keeps_crashing_backs_off_and_health_says_so(up, api):
    """Killed three times within a minute of each start: it is restarted after 1, 2, then 4 s,
    and meanwhile /health answers 503 saying which process keeps crashing."""
    for _ in range(3):
        old = kill(up, "code-server")
        wait("the code server back", lambda old=old: back(up, "code-server", old), RESTART_WITHIN)
    kill(up, "code-server")  # the fourth quick crash: a wait of 8 s before the next start
    # /health may first answer 503 for the unreachable code location alone, before the
    # supervisor has recorded the crash: wait for the answer that names it
    wait("/health naming the crashes", lambda: (
        answer := api.get("/health")).status_code == 503 and any(
            "code-server keeps crashing" in reason for reason in answer.json()["reasons"]
        ), 8)
    assert up.services()["code-server"]["quick_crashes"] >= 4
    wait("/health ok again", lambda: api.get("/health").status_code == 200, 90)
    assert "restarting in 4 s" in up.text() and "restarting in 8 s" in up.text()
