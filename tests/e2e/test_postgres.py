"""Several machines' mode on one: Dagster's runs and events in a real PostgreSQL
(STOREMON_DAGSTER_POSTGRES_URL), the stores in 2 shards, steps on a Celery worker; the report
through the REST API is the one-file report, and the runs are in PostgreSQL, not SQLite.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from support.processes import Process, free_port
from support.stack import wait_for_report
from support.up import running_up

PG_BIN = next(
    (path for path in sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True)
     if (path / "postgres").exists() and (path / "initdb").exists()),
    None,
)
pytestmark = [
    pytest.mark.skipif(
        PG_BIN is None, reason="PostgreSQL is not installed (.ci/run installs Debian's postgresql)"
    ),
    pytest.mark.skipif(
        shutil.which("redis-server") is None,
        reason="redis-server is not installed (.ci/run installs Debian's redis-server)",
    ),
]
REPORT_TIMEOUT = 300


def as_postgres_user(argv: list[str]) -> list[str]:
    """PostgreSQL refuses to run as root: as root, run it as the `postgres` user."""
    if os.geteuid() != 0:
        return argv
    return [shutil.which("runuser") or "/usr/sbin/runuser", "-u", "postgres", "--", *argv]


def psql(port: int, database_name: str, query: str) -> str:
    return subprocess.run(
        ["psql", "-h", "127.0.0.1", "-p", str(port), "-U", "storemon", "-d", database_name,
         "-tAc", query],
        capture_output=True, text=True, check=True, timeout=60,
    ).stdout.strip()


@pytest.fixture(scope="module")
def postgres() -> Iterator[int]:
    # not under pytest's temporary folders: those are private to root, and the server runs as
    # the `postgres` user
    with tempfile.TemporaryDirectory(prefix="storemon-postgres-") as folder:
        yield from _postgres(Path(folder))


def _postgres(root: Path) -> Iterator[int]:
    data = root / "data"
    data.mkdir()
    if os.geteuid() == 0:
        shutil.chown(root, "postgres")
        shutil.chown(data, "postgres")
    subprocess.run(
        as_postgres_user([str(PG_BIN / "initdb"), "-D", str(data), "-U", "storemon",
                          "--auth=trust", "--no-sync"]),
        check=True, capture_output=True, timeout=300,
    )
    port = free_port()
    server = Process(
        "postgres",
        as_postgres_user([str(PG_BIN / "postgres"), "-D", str(data), "-p", str(port),
                          "-h", "127.0.0.1", "-k", str(root), "-c", "fsync=off"]),
        env={}, cwd=root, log_dir=root,
    )
    try:
        deadline = time.monotonic() + 60
        while subprocess.run([str(PG_BIN / "pg_isready"), "-h", "127.0.0.1", "-p", str(port)],
                             capture_output=True).returncode != 0:
            assert server.alive and time.monotonic() < deadline, server.log_tail()
            time.sleep(0.2)
        psql(port, "postgres", "CREATE DATABASE dagster")
        yield port
    finally:
        server.stop()


def test_sharded_celery_report_with_dagster_in_postgres(postgres, sample_report_csv, tmp_path):
    with running_up(
        tmp_path / "state", tmp_path / "up.log",
        args=("--executor", "celery", "--workers", "1"),
        env={
            "STOREMON_SHARDS": "2",
            "STOREMON_DAGSTER_POSTGRES_URL": f"postgresql://storemon@127.0.0.1:{postgres}/dagster",
        },
        timeout=600,
    ) as service:
        assert "Dagster storage in PostgreSQL" in service.text()
        with httpx.Client(base_url=service.api_url, timeout=60) as api:
            answer = api.post("/trigger_report", params={"fresh": "true"})
            assert answer.status_code == 202, answer.text
            report_id = answer.json()["report_id"]
            status = wait_for_report(api, report_id, REPORT_TIMEOUT)
            assert status["status"] == "Complete", status
            assert api.get(f"/reports/{report_id}/csv").content == sample_report_csv
        runs = psql(postgres, "dagster", f"SELECT count(*) FROM runs WHERE run_id = '{report_id}'")
        assert runs == "1"
        assert int(psql(postgres, "dagster", "SELECT count(*) FROM event_logs")) > 100
        assert not list((tmp_path / "state" / "dagster").rglob("runs.db")), "no SQLite storage"
