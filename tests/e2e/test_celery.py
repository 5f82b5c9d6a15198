"""Shards on Dagster's Celery executor: `storemon up --executor celery --workers 2` with
STOREMON_SHARDS=4 starts Redis and two Celery workers beside Dagster and the API, and serves the
same product as the one-file default: the same CSV byte for byte, the same files ingested once,
a shard step whose worker process is killed run again to the right CSV.
"""

from __future__ import annotations

import os
import shutil
import signal
import time
from collections.abc import Iterator

import dagster as dg
import httpx
import psutil
import pytest
from support.stack import wait_for_report
from support.up import Up, api_client, running_up

from storemon_pipeline.engine.db import database
from storemon_pipeline.engine.shards import shard_db_paths
from storemon_pipeline.engine.state import read_data_version
from storemon_pipeline.settings import SAMPLE_DATA_DIR

pytestmark = pytest.mark.skipif(
    shutil.which("redis-server") is None,
    reason="redis-server is not installed (.ci/run installs Debian's redis-server)",
)

SHARDS = 4
VISIBILITY_SECONDS = 20
STEP_START = dg.DagsterEventType.STEP_START
STEP_ENDS = (dg.DagsterEventType.STEP_SUCCESS, dg.DagsterEventType.STEP_FAILURE)
REPORT_TIMEOUT = 300


def wait(what: str, condition, timeout: float):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = condition()
        if found:
            return found
        time.sleep(0.05)
    raise AssertionError(f"not within {timeout:.0f} s: {what}")


@pytest.fixture(scope="module")
def up(tmp_path_factory) -> Iterator[Up]:
    root = tmp_path_factory.mktemp("celery")
    with running_up(
        root / "state", root / "up.log",
        args=("--executor", "celery", "--workers", "2"),
        # short, so that a step of a worker killed whole is handed out again within the test
        env={"STOREMON_SHARDS": str(SHARDS),
             "STOREMON_CELERY_VISIBILITY_TIMEOUT_SECONDS": str(VISIBILITY_SECONDS)},
        timeout=600,
    ) as service:
        yield service


@pytest.fixture(scope="module")
def api(up: Up) -> Iterator[httpx.Client]:
    with api_client(up) as client:
        yield client


def trigger(api: httpx.Client) -> str:
    answer = api.post("/trigger_report", params={"fresh": "true"})
    assert answer.status_code == 202, answer.text
    return answer.json()["report_id"]


def finished_csv(api: httpx.Client, report_id: str) -> bytes:
    status = wait_for_report(api, report_id, REPORT_TIMEOUT)
    assert status["status"] == "Complete", status
    return api.get(f"/reports/{report_id}/csv").raise_for_status().content


def step_events(up: Up, run_id: str) -> list[dg.EventLogEntry]:
    with dg.DagsterInstance.from_config(str(up.home / "dagster")) as instance:
        return list(instance.all_logs(run_id))


def test_the_sharded_report_on_celery_is_the_one_file_report(up, api, sample_report_csv):
    assert "Celery executor: broker redis://127.0.0.1:" in up.text()
    services = up.services()
    assert {"redis", "worker-1", "worker-2"} <= set(services)
    assert all(path.exists() for path in shard_db_paths(up.home, SHARDS))
    assert not (up.home / "storemon.duckdb").exists()

    report_id = trigger(api)
    assert finished_csv(api, report_id) == sample_report_csv
    events = step_events(up, report_id)
    started = {e.step_key for e in events if e.dagster_event_type == STEP_START}
    assert {f"uptime_report.report_shard_{k}" for k in range(SHARDS)} <= started
    in_workers = [e for e in events if "in celery worker" in (e.message or "")]
    assert len(in_workers) >= SHARDS + 2, "every step ran on a Celery worker"


def _shard_counts(up: Up) -> list[tuple[int, int, int]]:
    counts = []
    for path in shard_db_paths(up.home, SHARDS):
        with database(path, read_only=True, wait_seconds=60) as con:
            counts.append(con.execute(
                "SELECT (SELECT count(*) FROM polls), (SELECT count(*) FROM business_hours), "
                "(SELECT count(*) FROM quarantine)"
            ).fetchone())
    return counts


def test_the_same_files_again_change_nothing(up, api, sample_report_csv):
    version = read_data_version(up.home)
    counts = _shard_counts(up)
    latest = (up.home / "latest_poll.json").read_text()
    incoming = up.home / "incoming"
    for source in SAMPLE_DATA_DIR.iterdir():
        shutil.copy(source, incoming / source.name)
    wait("the incoming files ingested", lambda: (up.home / "latest_poll.json").read_text()
         != latest, 180)
    assert read_data_version(up.home) == version
    assert _shard_counts(up) == counts
    assert finished_csv(api, trigger(api)) == sample_report_csv


def _executing_worker(up: Up, report_id: str) -> int | None:
    """The pid of the process running a shard step of the run now (a Celery pool process), if
    any: Dagster records the pid of each event's process."""
    events = step_events(up, report_id)
    done = {e.step_key for e in events if e.dagster_event_type in STEP_ENDS}
    running = [
        e for e in events
        if e.dagster_event_type == STEP_START
        and "report_shard" in (e.step_key or "")
        and e.step_key not in done
    ]
    return running[0].dagster_event.pid if running else None


def _kill_during_a_shard_step(api: httpx.Client, up: Up, whole_worker: bool) -> str | None:
    """Trigger a report and SIGKILL the process running one of its shard steps (with
    ``whole_worker``, its Celery worker too, as when a machine dies); returns the report id, or
    None if no step was caught running before the run ended."""
    report_id = trigger(api)
    deadline = time.monotonic() + REPORT_TIMEOUT
    victim = None
    while victim is None and time.monotonic() < deadline:
        if wait_for_report(api, report_id, 0)["status"] != "Running":
            return None
        victim = _executing_worker(up, report_id)
        time.sleep(0.02)
    workers = {up.services()[name]["pid"] for name in ("worker-1", "worker-2")}
    worker = psutil.Process(victim).ppid()
    assert worker in workers
    os.kill(victim, signal.SIGKILL)
    if whole_worker:
        os.kill(worker, signal.SIGKILL)
    return report_id


@pytest.mark.parametrize("whole_worker", [False, True], ids=["step-process", "whole-worker"])
def test_a_worker_killed_during_a_shard_step_the_run_still_completes(
    up, api, sample_report_csv, whole_worker
):
    """SIGKILL the process executing a shard step (Celery's pool process), or its whole worker:
    the step is delivered again (at once; after the visibility timeout), the run completes and
    the CSV is right. Tried on fresh reports until a kill lands inside a step."""
    for _attempt in range(8):
        report_id = _kill_during_a_shard_step(api, up, whole_worker)
        if report_id:
            started = time.monotonic()
            assert finished_csv(api, report_id) == sample_report_csv
            if whole_worker:
                assert time.monotonic() - started >= VISIBILITY_SECONDS - 5
            return
    pytest.fail("no shard step was caught running in 8 reports")
