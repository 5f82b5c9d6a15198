"""The whole product on loopback for tests: Dagster webserver + daemon, and the API under uvicorn,
on a temporary state folder loaded with the sample data."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from storemon_pipeline.defs.assets import DUCKDB_POOL
from support.processes import Process, free_port, wait_until

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
READY_TIMEOUT = 240.0
REPORT_TIMEOUT = 600.0

JOBS_QUERY = (
    "{ repositoriesOrError { ... on RepositoryConnection { nodes { pipelines { name } } } } }"
)


def stack_env(home: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("STOREMON_", "DAGSTER_"))}
    env.update(
        STOREMON_HOME=str(home),
        DAGSTER_HOME=str(home / "dagster"),
        PYTHONUNBUFFERED="1",
        **extra,
    )
    return env


def prepare_home(home: Path, data: Path | None = ROOT / "data") -> None:
    """A Dagster instance, and the data loaded with the CLI, which leaves latest_poll.json as the
    Dagster ingest does (None: no data)."""
    (home / "dagster").mkdir(parents=True, exist_ok=True)
    shutil.copy(ROOT / "dagster.yaml", home / "dagster" / "dagster.yaml")
    env = stack_env(home)
    # Create Dagster's SQLite storage once: the webserver, the daemon and their code servers
    # creating it at the same time can leave two alembic heads (the location then fails to load).
    # Then the DuckDB pool's limit, as `storemon up` declares it.
    for command in (["instance", "migrate"], ["instance", "concurrency", "set", DUCKDB_POOL, "1"]):
        subprocess.run([str(BIN / "dagster"), *command], env=env, cwd=ROOT, check=True,
                       capture_output=True, timeout=300)
    if data is None:
        return
    subprocess.run([str(BIN / "storemon"), "ingest", str(data)], env=env, cwd=ROOT, check=True,
                   capture_output=True, timeout=600)


@dataclass
class Stack:
    home: Path
    logs: Path
    dagster_port: int = field(default_factory=free_port)
    processes: list[Process] = field(default_factory=list)
    webserver: Process | None = None
    daemon: Process | None = None
    api_url: str = ""

    @property
    def dagster_url(self) -> str:
        return f"http://127.0.0.1:{self.dagster_port}"

    def env(self, **extra: str) -> dict[str, str]:
        return stack_env(self.home, STOREMON_DAGSTER_URL=self.dagster_url, **extra)

    def _start(self, name: str, argv: list[str], **extra_env: str) -> Process:
        proc = Process(name, argv, env=self.env(**extra_env), cwd=ROOT, log_dir=self.logs)
        self.processes.append(proc)
        return proc

    def start_dagster(self, workspace: Path = ROOT / "workspace.yaml") -> None:
        """The webserver and the daemon over ``workspace`` (default: the product's)."""
        workspace = str(workspace)
        self.webserver = self._start(
            "dagster-webserver",
            [str(BIN / "dagster-webserver"), "-w", workspace, "-h", "127.0.0.1",
             "-p", str(self.dagster_port)],
        )
        self.daemon = self._start("dagster-daemon", [str(BIN / "dagster-daemon"), "run",
                                                     "-w", workspace])
        wait_until("the Dagster webserver and the storemon code location", self._jobs_loaded,
                   timeout=READY_TIMEOUT, processes=[self.webserver, self.daemon])

    def _jobs_loaded(self) -> bool:
        answer = httpx.post(f"{self.dagster_url}/graphql", json={"query": JOBS_QUERY}, timeout=10)
        nodes = answer.json()["data"]["repositoriesOrError"].get("nodes", [])
        return any(job["name"] == "uptime_report_job" for n in nodes for job in n["pipelines"])

    def start_api(
        self, name: str = "api", wait_healthy: bool = True, serve: bool = False, **extra_env: str
    ) -> str:
        """Start one API process: `uvicorn storemon_api.main:app`, or with ``serve`` the
        `python -m storemon_api` entry point. Returns its base URL once /health answers 200."""
        port = free_port()
        argv = (
            [sys.executable, "-m", "storemon_api", "--host", "127.0.0.1", "--port", str(port),
             "--dagster-url", self.dagster_url]
            if serve
            else [sys.executable, "-m", "uvicorn", "storemon_api.main:app", "--host", "127.0.0.1",
                  "--port", str(port), "--log-level", "warning"]
        )
        proc = self._start(name, argv, **extra_env)
        url = f"http://127.0.0.1:{port}"

        def ready() -> bool:
            code = httpx.get(f"{url}/health", timeout=10).status_code
            return code == 200 or (not wait_healthy and code == 503)

        wait_until(f"{name} at {url}", ready, timeout=READY_TIMEOUT,
                   processes=[proc, *(p for p in (self.webserver, self.daemon) if p)])
        return url

    def stop_webserver(self) -> None:
        if self.webserver is not None:
            self.webserver.stop()

    def stop(self) -> None:
        for proc in reversed(self.processes):
            proc.stop()


def wait_for_report(client: httpx.Client, report_id: str, timeout: float = REPORT_TIMEOUT) -> dict:
    """Poll /reports/<id> until it is no longer Running; returns the last status. A 503 (Dagster
    busy or restarting: the API says so with Retry-After) is retried as a client should."""
    deadline = time.monotonic() + timeout
    while True:
        answer = client.get(f"/reports/{report_id}")
        if answer.status_code == 503 and time.monotonic() < deadline:
            time.sleep(float(answer.headers.get("retry-after", "1")))
            continue
        status = answer.raise_for_status().json()
        if status["status"] != "Running" or time.monotonic() > deadline:
            return status
        time.sleep(0.25)
