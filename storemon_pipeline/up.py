"""`storemon up`: the whole product on one machine, state in one folder, nothing to install.

1. Dagster's instance lives in ``$STOREMON_HOME/dagster`` (DAGSTER_HOME), configured by the
   repository's ``dagster.yaml``; SQLite storage, beside the DuckDB file.
2. On an empty state folder the sample data in ``data/`` is ingested; then, if the latest poll's
   report partition has never been materialized, the graph is (business windows and that
   report). Both are ordinary Dagster runs, executed here before the services start.
3. The services start as child processes: ``dagster dev`` (webserver and daemon) on 127.0.0.1;
   more can be added to ``services()`` (the REST API under uvicorn). They are started together
   and stopped together: Ctrl-C, SIGTERM, or any of them exiting stops them all.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import psutil

from storemon_pipeline.settings import PROJECT_ROOT, Settings, get_settings

HOST = "127.0.0.1"
WORKSPACE_FILE = PROJECT_ROOT / "workspace.yaml"
INSTANCE_FILE = PROJECT_ROOT / "dagster.yaml"
READY_TIMEOUT_SECONDS = 180.0
STOP_TIMEOUT_SECONDS = 30.0
# Quiet in-process runs: `up` prints its own one-line summaries.
QUIET_RUN_CONFIG = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}


def log(message: str) -> None:
    print(f"storemon up: {message}", flush=True)


# --- child processes -------------------------------------------------------------------------


@dataclass
class Service:
    """A child process of `storemon up`, ready when ``ready_url`` answers."""

    name: str
    args: Sequence[str]
    url: str
    ready_url: str
    cwd: Path | None = None
    process: subprocess.Popen | None = field(default=None, repr=False)

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None


class ServiceGroup:
    """Child processes started together and stopped together.

    Each child gets its own session, so a terminal's Ctrl-C reaches only `storemon up`, which
    then stops each child by its pid: SIGINT (a graceful stop for dagster dev and uvicorn), then
    SIGTERM, then SIGKILL; descendants a child leaves behind are ended by pid too.
    """

    def __init__(self, env: dict[str, str]) -> None:
        self.env = env
        self.services: list[Service] = []

    def start(self, service: Service) -> None:
        log(f"starting {service.name}: {' '.join(service.args[:4])} ...")
        service.process = subprocess.Popen(
            list(service.args), cwd=service.cwd, env=self.env, start_new_session=True
        )
        self.services.append(service)

    def wait_ready(self, service: Service, timeout: float = READY_TIMEOUT_SECONDS) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not service.running():
                raise RuntimeError(f"{service.name} exited during start-up")
            try:
                with urllib.request.urlopen(service.ready_url, timeout=2) as response:
                    if response.status == 200:
                        return
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            time.sleep(0.5)
        raise TimeoutError(f"{service.name} not ready after {timeout:.0f} s")

    def watch(self) -> int:
        """Until Ctrl-C / SIGTERM (returns 0) or a child exits (returns its code)."""
        try:
            while True:
                for service in self.services:
                    if not service.running():
                        code = service.process.returncode if service.process else 1
                        log(f"{service.name} exited with code {code}; stopping the others")
                        return code or 1
                time.sleep(0.5)
        except KeyboardInterrupt:
            log("stopping")
            return 0

    def stop(self, timeout: float = STOP_TIMEOUT_SECONDS) -> None:
        """Stop every child, last started first, and whatever they left running."""
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
                    log(f"{service.name} did not stop on {sig.name}")
            descendants += _descendants(process.pid)
            _end_processes(descendants)
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


def port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        # as servers do, so that connections of a previous run in TIME_WAIT do not count
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((HOST, port))
        except OSError:
            return False
    return True


def dagster_service(settings: Settings, port: int) -> Service:
    return Service(
        name="dagster",
        args=[
            sys.executable, "-m", "dagster", "dev",
            "--workspace", str(WORKSPACE_FILE),
            "--host", HOST,
            "--port", str(port),
        ],
        url=f"http://{HOST}:{port}",
        ready_url=f"http://{HOST}:{port}/server_info",
        # dagster dev warns about a dagster.yaml in its working folder that is not DAGSTER_HOME
        cwd=settings.dagster_home,
    )


def api_service(port: int, dagster_url: str) -> Service:
    """The REST API and web page (storemon_api) under uvicorn, talking to the Dagster webserver."""
    return Service(
        name="api",
        args=[
            sys.executable, "-m", "storemon_api",
            "--host", HOST,
            "--port", str(port),
            "--dagster-url", dagster_url,
        ],
        url=f"http://{HOST}:{port}",
        # not /health: that answers 503 until the Dagster daemon's first heartbeat
        ready_url=f"http://{HOST}:{port}/openapi.json",
    )


def services(settings: Settings, dagster_port: int, api_port: int) -> list[Service]:
    """What `storemon up` runs, started and stopped together."""
    return [
        dagster_service(settings, dagster_port),
        api_service(api_port, f"http://{HOST}:{dagster_port}"),
    ]


# --- state -----------------------------------------------------------------------------------


def service_env(settings: Settings) -> dict[str, str]:
    return {
        **os.environ,
        "STOREMON_HOME": str(settings.state_dir),
        "DAGSTER_HOME": str(settings.dagster_home),
    }


def install_instance_config(settings: Settings) -> Path:
    """The repository's dagster.yaml, copied to DAGSTER_HOME (each start: it stays in step)."""
    settings.ensure_dirs()
    target = settings.dagster_home / "dagster.yaml"
    shutil.copyfile(INSTANCE_FILE, target)
    return target


def prepare_state(settings: Settings) -> None:
    """Ingest the sample data if the state is empty; give every hour that holds polls its
    report partition; materialize the partitions that never were (on a new state: the whole
    history of the sample, in one run). Runs in this process, on the instance in DAGSTER_HOME."""
    import dagster as dg

    from storemon_pipeline.definitions import build_defs
    from storemon_pipeline.defs.assets import DUCKDB_POOL
    from storemon_pipeline.defs.partitions import (
        add_report_partitions,
        contiguous_ranges,
        range_tags,
        unmaterialized_partitions,
    )
    from storemon_pipeline.engine.db import database
    from storemon_pipeline.engine.history import poll_hours
    from storemon_pipeline.engine.ingest import files_loaded

    defs = build_defs(settings)
    with dg.DagsterInstance.get() as instance:
        # Declare the pool's limit up front: the run queue enforces a limit it knows of.
        instance.event_log_storage.set_concurrency_slots(DUCKDB_POOL, 1)

        with database(settings.duckdb_path, wait_seconds=settings.lock_wait_seconds) as con:
            files = files_loaded(con)
        if files == 0:
            started = time.perf_counter()
            log("empty state: ingesting the sample data (data/)")
            result = defs.resolve_job_def("ingest_job").execute_in_process(
                instance=instance, run_config=QUIET_RUN_CONFIG,
                tags={"storemon/trigger": "storemon up"}, raise_on_error=False,
            )
            log(f"ingest run {result.run_id}: "
                f"{'ok' if result.success else 'FAILED'} in {time.perf_counter() - started:.1f} s")

        # Data loaded with `storemon ingest` has no partitions yet.
        with database(settings.duckdb_path, wait_seconds=settings.lock_wait_seconds) as con:
            added = add_report_partitions(instance, poll_hours(con))
        if added:
            log(f"{len(added)} report partitions added for the hours that hold polls")
        missing = unmaterialized_partitions(instance)
        if not missing:
            log("every report partition is materialized")
            return
        for keys in contiguous_ranges(instance, missing):
            started = time.perf_counter()
            log(f"materializing business windows and report partitions {keys[0]} .. {keys[-1]} "
                f"({len(keys)}) in one run")
            result = defs.resolve_job_def("refresh_job").execute_in_process(
                instance=instance, run_config=QUIET_RUN_CONFIG, raise_on_error=False,
                tags={**range_tags(keys), "storemon/trigger": "storemon up"},
            )
            evaluations = result.get_asset_check_evaluations()
            names = {c.check_name for c in evaluations}
            failed = sorted({c.check_name for c in evaluations if not c.passed})
            failures = f" (failed: {', '.join(failed)})" if failed else ""
            log(f"report run {result.run_id}: {'ok' if result.success else 'FAILED'} in "
                f"{time.perf_counter() - started:.1f} s; {len(names) - len(failed)} of "
                f"{len(names)} checks passed{failures}; "
                f"CSV {settings.reports_dir / (result.run_id + '.csv')}")


# --- the command -----------------------------------------------------------------------------


def _raise_keyboard_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def _install_stop_signals() -> None:
    """Ctrl-C and SIGTERM stop `storemon up`. Installed again after the in-process runs, whose
    Dagster machinery sets handlers of its own. A handled SIGINT is also what makes the children
    stoppable with SIGINT when `storemon up` itself was started with SIGINT ignored (in the
    background): an ignored signal stays ignored across exec, a handled one is reset."""
    signal.signal(signal.SIGINT, _raise_keyboard_interrupt)
    signal.signal(signal.SIGTERM, _raise_keyboard_interrupt)


def run_up(dagster_port: int = 3000, api_port: int = 8000) -> int:
    settings = get_settings()
    for port, option in ((dagster_port, "--dagster-port"), (api_port, "--api-port")):
        if not port_is_free(port):
            log(f"port {port} on {HOST} is in use: choose another with {option}")
            return 2
    started = time.perf_counter()
    env = service_env(settings)
    os.environ.update({"STOREMON_HOME": env["STOREMON_HOME"], "DAGSTER_HOME": env["DAGSTER_HOME"]})
    install_instance_config(settings)
    log(f"state folder {settings.state_dir}")

    _install_stop_signals()
    group = ServiceGroup(env)
    try:
        prepare_state(settings)
        _install_stop_signals()
        for service in services(settings, dagster_port, api_port):
            group.start(service)
        for service in group.services:
            group.wait_ready(service)
            log(f"{service.name} ready at {service.url}")
        dagster, api = group.services
        log(f"up in {time.perf_counter() - started:.1f} s. Dagster UI: {dagster.url}  "
            f"REST API and page: {api.url} (docs {api.url}/docs). Ctrl-C to stop.")
        return group.watch()
    except KeyboardInterrupt:
        log("stopping")
        return 0
    except (RuntimeError, TimeoutError) as exc:
        log(f"failed: {exc}")
        return 1
    finally:
        group.stop()
        log("stopped")
