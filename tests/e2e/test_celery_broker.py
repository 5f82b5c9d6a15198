"""The Celery executor on a Redis of one's own (STOREMON_REDIS_URL): `storemon up` starts none,
and when that Redis stops, /health says so, a report fails with a clear message, and once it is
back reports work again, nothing lost.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from support.processes import Process, free_port
from support.stack import wait_for_report
from support.up import Up, running_up

REDIS = shutil.which("redis-server")
pytestmark = pytest.mark.skipif(
    REDIS is None, reason="redis-server is not installed (.ci/run installs Debian's redis-server)"
)
REPORT_TIMEOUT = 300


def start_redis(port: int, log_dir: Path) -> Process:
    redis = Process(
        "redis", [REDIS, "--bind", "127.0.0.1", "--port", str(port), "--save", "",
                  "--appendonly", "no"],
        env={}, cwd=log_dir, log_dir=log_dir,
    )
    deadline = time.monotonic() + 30
    while subprocess.run(["redis-cli", "-p", str(port), "ping"], capture_output=True,
                         text=True).stdout.strip() != "PONG":
        assert time.monotonic() < deadline and redis.alive, redis.log_tail()
        time.sleep(0.1)
    return redis


@pytest.fixture(scope="module")
def stack(tmp_path_factory) -> Iterator[tuple[Up, int, Path]]:
    root = tmp_path_factory.mktemp("own-redis")
    port = free_port()
    redis = start_redis(port, root)
    try:
        with running_up(
            root / "state", root / "up.log",
            args=("--executor", "celery", "--workers", "1"),
            env={"STOREMON_SHARDS": "2", "STOREMON_REDIS_URL": f"redis://127.0.0.1:{port}/0"},
            timeout=600,
        ) as service:
            yield service, port, root
    finally:
        redis.stop()


def test_redis_stopped_then_back(stack):
    up, port, root = stack
    assert "redis" not in up.services(), "with STOREMON_REDIS_URL, storemon up starts none"
    with httpx.Client(base_url=up.api_url, timeout=60) as api:
        health = api.get("/health")
        assert health.status_code == 200, health.text

        subprocess.run(["redis-cli", "-p", str(port), "shutdown", "nosave"], capture_output=True)
        health = api.get("/health")
        assert health.status_code == 503
        assert "the Celery broker (Redis) is unreachable: reports cannot run" in (
            health.json()["reasons"]
        )

        answer = api.post("/trigger_report", params={"fresh": "true"})
        assert answer.status_code == 202, answer.text
        failed = wait_for_report(api, answer.json()["report_id"], REPORT_TIMEOUT)
        assert failed["status"] == "Failed", failed
        assert "celery" in failed["error"].lower() or "redis" in failed["error"].lower(), failed

        redis = start_redis(port, root)
        try:
            deadline = time.monotonic() + 120
            while api.get("/health").status_code != 200:
                assert time.monotonic() < deadline, api.get("/health").text
                time.sleep(1)
            answer = api.post("/trigger_report", params={"fresh": "true"})
            done = wait_for_report(api, answer.json()["report_id"], REPORT_TIMEOUT)
            assert done["status"] == "Complete", done
            assert done["stores"] == 1500
        finally:
            redis.stop()
