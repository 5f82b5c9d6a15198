"""`storemon up`: the whole product on one machine, state in one folder, nothing to install.

1. Dagster's instance lives in ``$STOREMON_HOME/dagster`` (DAGSTER_HOME), configured by the
   repository's ``dagster.yaml``; SQLite storage, beside the DuckDB files.
2. On an empty state folder the sample data in ``data/`` is ingested; every hour that holds polls
   gets its report partition, and the partitions never materialized are, in one run per
   contiguous range; likewise every local month that holds polls gets its SLA month, and the
   months never materialized are, one run each. These are ordinary Dagster runs, executed here
   before the services start.
3. The services run as child processes on 127.0.0.1, each watched by a supervisor
   (``supervisor.py``): the code server (``dagster api grpc``), the Dagster webserver and
   daemon (which reach the code server through a workspace file written here), and the REST
   API under uvicorn. A child that dies is started again, with a back-off when it keeps dying;
   after the code server comes back the webserver reloads the code location. A run whose worker
   process is gone is marked failed, so the run queue never waits on it. Ctrl-C or SIGTERM stops
   everything.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import psutil

from storemon_pipeline.distributed import QUEUE, worker_config_dir
from storemon_pipeline.settings import PROJECT_ROOT, Settings, get_settings
from storemon_pipeline.supervisor import Service, Supervisor, probe_url

if TYPE_CHECKING:
    import dagster as dg

HOST = "127.0.0.1"
LOCATION = "storemon"
INSTANCE_FILE = PROJECT_ROOT / "dagster.yaml"
READY_TIMEOUT_SECONDS = 180.0
# A STARTED run whose worker process has been gone this long is marked failed.
ORPHAN_GRACE_SECONDS = 10.0
SENTINEL_EVERY_SECONDS = 10.0
# Quiet in-process runs: `up` prints its own one-line summaries.
QUIET_RUN_CONFIG = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}
BIN = Path(sys.executable).parent


def log(message: str) -> None:
    print(f"storemon up: {message}", flush=True)


def port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        # as servers do, so that connections of a previous run in TIME_WAIT do not count
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((HOST, port))
        except OSError:
            return False
    return True


def free_port(avoid: tuple[int, ...] = ()) -> int:
    """A free port the system picks, never one of ``avoid`` (the ports asked for on the command
    line, which nothing may hold yet while `up` prepares)."""
    while True:
        with socket.socket() as probe:
            probe.bind((HOST, 0))
            port = probe.getsockname()[1]
        if port not in avoid:
            return port


def port_answers(port: int) -> bool:
    with socket.socket() as probe:
        probe.settimeout(1)
        return probe.connect_ex((HOST, port)) == 0


# --- the services ----------------------------------------------------------------------------


def code_server_service(port: int) -> Service:
    """The code location in its own process: the webserver, the daemon and the runs they
    launch all use it, and it can be restarted without them."""
    return Service(
        name="code-server",
        args=[
            sys.executable, "-m", "dagster", "api", "grpc",
            "--module-name", "storemon_pipeline.definitions", "--attribute", "defs",
            "--location-name", LOCATION, "--host", HOST, "--port", str(port),
            "--use-python-environment-entry-point",
        ],
        ready=lambda: port_answers(port),
    )


def redis_service(server: str, port: int) -> Service:
    """The Celery executor's broker and result backend: a Redis on 127.0.0.1 that keeps nothing
    on disk (a queued step lost with it fails its run, which can be launched again)."""
    return Service(
        name="redis",
        args=[server, "--bind", HOST, "--port", str(port), "--save", "", "--appendonly", "no"],
        ready=lambda: port_answers(port),
    )


def worker_service(index: int) -> Service:
    """A Celery worker that executes one step at a time (standing in for one machine)."""
    return Service(
        name=f"worker-{index}",
        args=[
            str(BIN / "celery"), "-A", "dagster_celery.app", "worker",
            "--concurrency", "1", "--prefetch-multiplier", "1", "--loglevel", "WARNING",
            "--queues", QUEUE, "--hostname", f"storemon-{index}@%h",
        ],
        ready=lambda: True,
    )


def webserver_service(settings: Settings, port: int, workspace: Path) -> Service:
    url = f"http://{HOST}:{port}"
    return Service(
        name="webserver",
        args=[str(BIN / "dagster-webserver"), "-h", HOST, "-p", str(port), "-w", str(workspace)],
        ready=lambda: probe_url(f"{url}/server_info"),
        url=url,
        cwd=settings.dagster_home,
    )


def daemon_service(settings: Settings, workspace: Path) -> Service:
    """The run queue, the sensors and the schedule; ready when it has written a heartbeat."""
    started = time.time()
    return Service(
        name="daemon",
        args=[str(BIN / "dagster-daemon"), "run", "-w", str(workspace)],
        ready=lambda: _daemon_heartbeat_after(settings, started),
        cwd=settings.dagster_home,
    )


def api_service(port: int, dagster_url: str) -> Service:
    """The REST API and web page (storemon_api) under uvicorn, talking to the Dagster webserver."""
    url = f"http://{HOST}:{port}"
    return Service(
        name="api",
        args=[
            sys.executable, "-m", "storemon_api",
            "--host", HOST, "--port", str(port), "--dagster-url", dagster_url,
        ],
        # not /health: that answers 503 until the Dagster daemon's first heartbeat
        ready=lambda: probe_url(f"{url}/openapi.json"),
        url=url,
    )


def _daemon_heartbeat_after(settings: Settings, since: float) -> bool:
    import dagster as dg

    with dg.DagsterInstance.from_config(str(settings.dagster_home)) as instance:
        beats = instance.get_daemon_heartbeats()
    return any(beat.timestamp > since for beat in beats.values())


def reload_code_location(dagster_url: str) -> None:
    """Ask the webserver to load the code location again now (its watcher would, later)."""
    answer = httpx.post(
        f"{dagster_url}/graphql",
        json={
            "query": "mutation Reload($name: String!) { reloadRepositoryLocation("
            "repositoryLocationName: $name) { __typename } }",
            "variables": {"name": LOCATION},
        },
        timeout=30,
    )
    answer.raise_for_status()
    log("code location reloaded in the webserver")


def write_workspace(settings: Settings, code_server_port: int) -> Path:
    """The webserver's and the daemon's workspace: the code server on its port."""
    path = settings.dagster_home / "workspace.yaml"
    path.write_text(
        "# Written by `storemon up`: the code location is served by its own process.\n"
        "load_from:\n"
        "  - grpc_server:\n"
        f"      host: {HOST}\n"
        f"      port: {code_server_port}\n"
        f"      location_name: {LOCATION}\n"
    )
    return path


class RunSentinel:
    """Marks failed the runs whose worker process is gone.

    Dagster's default run launcher cannot tell whether a run's worker is alive, so a run whose
    worker was killed (or died with its host) would stay STARTED forever and hold the DuckDB
    pool. The worker records its pid when it starts ("Started process for run"); a STARTED run
    whose worker has been gone for ORPHAN_GRACE_SECONDS is reported failed, which frees the
    queue.
    """

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.gone_since: dict[str, float] = {}

    def __call__(self) -> None:
        import dagster as dg

        now = time.monotonic()
        with dg.DagsterInstance.from_config(str(self.settings.dagster_home)) as instance:
            started = instance.get_run_records(
                dg.RunsFilter(statuses=[dg.DagsterRunStatus.STARTED])
            )
            seen = set()
            for record in started:
                run = record.dagster_run
                seen.add(run.run_id)
                if _worker_alive(instance, run.run_id):
                    self.gone_since.pop(run.run_id, None)
                    continue
                since = self.gone_since.setdefault(run.run_id, now)
                if now - since < ORPHAN_GRACE_SECONDS:
                    continue
                current = instance.get_run_by_id(run.run_id)
                if current is not None and current.status == dg.DagsterRunStatus.STARTED:
                    message = (
                        "the run's worker process is gone (killed, or died with its host); "
                        "storemon up marked the run as failed so that the queue goes on"
                    )
                    instance.report_run_failed(current, message)
                    log(f"run {run.run_id}: {message}")
                self.gone_since.pop(run.run_id, None)
            for run_id in set(self.gone_since) - seen:
                del self.gone_since[run_id]


def _worker_alive(instance, run_id: str) -> bool:
    """Whether the process that announced itself as the run's worker is still running."""
    import dagster as dg

    events = instance.all_logs(run_id, of_type=dg.DagsterEventType.ENGINE_EVENT)
    pids = [
        (int(event.dagster_event.engine_event_data.metadata["pid"].value), event.timestamp)
        for event in events
        if event.dagster_event is not None
        and event.dagster_event.engine_event_data is not None
        and "pid" in event.dagster_event.engine_event_data.metadata
        and event.message.startswith("Started process for run")
    ]
    if not pids:
        return True  # not announced yet: the start timeout of run monitoring covers it
    pid, announced = pids[-1]
    try:
        process = psutil.Process(pid)
        # a pid reused by another process started after the announcement is not the worker
        return process.is_running() and process.create_time() <= announced + 1
    except psutil.NoSuchProcess:
        return False


# --- state -----------------------------------------------------------------------------------


def service_env(settings: Settings) -> dict[str, str]:
    return {
        **os.environ,
        "STOREMON_HOME": str(settings.state_dir),
        "DAGSTER_HOME": str(settings.dagster_home),
    }


# Dagster's storage in PostgreSQL (dagster-postgres); the URL stays in the environment.
POSTGRES_STORAGE = """
# Written by storemon up: STOREMON_DAGSTER_POSTGRES_URL is set, so runs, events and schedules
# live in PostgreSQL, where every machine of the deployment reaches them.
storage:
  postgres:
    postgres_url:
      env: STOREMON_DAGSTER_POSTGRES_URL
"""


def install_instance_config(settings: Settings) -> Path:
    """The repository's dagster.yaml, copied to DAGSTER_HOME (each start: it stays in step),
    with PostgreSQL storage when STOREMON_DAGSTER_POSTGRES_URL is set."""
    settings.ensure_dirs()
    target = settings.dagster_home / "dagster.yaml"
    text = INSTANCE_FILE.read_text()
    if settings.dagster_postgres_url:
        text += POSTGRES_STORAGE
    target.write_text(text)
    return target


def prepare_state(settings: Settings) -> None:
    """Ingest the sample data if the state is empty; give every hour that holds polls its
    report partition; materialize the partitions that never were (on a new state: the whole
    history of the sample, in one run); then the same for the SLA months (the sample's one
    month so far). Runs in this process, on the instance in DAGSTER_HOME."""
    import dagster as dg

    from storemon_pipeline.definitions import build_defs
    from storemon_pipeline.defs.assets import DUCKDB_POOL
    from storemon_pipeline.defs.partitions import (
        add_report_partitions,
        add_sla_months,
        contiguous_ranges,
        range_tags,
        unmaterialized_partitions,
    )
    from storemon_pipeline.defs.resources import StoremonState
    from storemon_pipeline.defs.sharded import shard_pool
    from storemon_pipeline.defs.tags import trigger_tags
    from storemon_pipeline.engine.history import poll_hours
    from storemon_pipeline.engine.ingest import files_loaded

    defs = build_defs(settings)
    state = StoremonState.from_settings(settings)
    with dg.DagsterInstance.get() as instance:
        # Declare the pools' limits up front: the run queue enforces a limit it knows of.
        shard_pools = [shard_pool(k) for k in range(settings.shards)] if settings.shards > 1 else []
        for pool in [DUCKDB_POOL, *shard_pools]:
            instance.event_log_storage.set_concurrency_slots(pool, 1)

        with state.connect() as con:
            files = files_loaded(con)
        if files == 0:
            started = time.perf_counter()
            log("empty state: ingesting the sample data (data/)")
            result = defs.resolve_job_def("ingest_job").execute_in_process(
                instance=instance, run_config=QUIET_RUN_CONFIG,
                tags=trigger_tags("up"), raise_on_error=False,
            )
            log(f"ingest run {result.run_id}: "
                f"{'ok' if result.success else 'FAILED'} in {time.perf_counter() - started:.1f} s")

        # Data loaded with `storemon ingest` has no partitions yet.
        with state.connect() as con:
            hours = poll_hours(con)
        added = add_report_partitions(instance, hours)
        if added:
            log(f"{len(added)} report partitions added for the hours that hold polls")
        months = add_sla_months(instance, hours)
        if months:
            log(f"SLA months added for the local months that hold polls: {', '.join(months)}")
        missing = unmaterialized_partitions(instance)
        if not missing:
            log("every report partition is materialized")
        for keys in contiguous_ranges(instance, missing):
            started = time.perf_counter()
            log(f"materializing business windows and report partitions {keys[0]} .. {keys[-1]} "
                f"({len(keys)}) in one run")
            result = defs.resolve_job_def("refresh_job").execute_in_process(
                instance=instance, run_config=QUIET_RUN_CONFIG, raise_on_error=False,
                tags={**range_tags(keys), **trigger_tags("up")},
            )
            evaluations = result.get_asset_check_evaluations()
            names = {c.check_name for c in evaluations}
            failed = sorted({c.check_name for c in evaluations if not c.passed})
            failures = f" (failed: {', '.join(failed)})" if failed else ""
            log(f"report run {result.run_id}: {'ok' if result.success else 'FAILED'} in "
                f"{time.perf_counter() - started:.1f} s; {len(names) - len(failed)} of "
                f"{len(names)} checks passed{failures}; "
                f"CSV {settings.reports_dir / (result.run_id + '.csv')}")
        catch_up_sla_months(defs, instance, settings)


def catch_up_sla_months(
    defs: dg.Definitions, instance: dg.DagsterInstance, settings: Settings
) -> None:
    """Materialize the SLA months never materialized, one run each, oldest first (a month
    materialized once is settled by the schedule when it ends)."""
    from storemon_pipeline.defs.assets import sla_csv_path
    from storemon_pipeline.defs.partitions import unmaterialized_sla_months
    from storemon_pipeline.defs.tags import trigger_tags

    missing = sorted(unmaterialized_sla_months(instance))
    if not missing:
        log("every SLA month is materialized")
        return
    job = defs.resolve_job_def("monthly_sla_job")
    for month in missing:
        started = time.perf_counter()
        result = job.execute_in_process(
            instance=instance, run_config=QUIET_RUN_CONFIG, raise_on_error=False,
            partition_key=month, tags=trigger_tags("up"),
        )
        failed = sorted({c.check_name for c in result.get_asset_check_evaluations()
                         if not c.passed})
        log(f"SLA run {result.run_id} for month {month}: "
            f"{'ok' if result.success else 'FAILED'} in {time.perf_counter() - started:.1f} s"
            + (f" (failed: {', '.join(failed)})" if failed else "")
            + f"; CSV {sla_csv_path(settings.reports_dir, month)}")


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


def celery_services(settings: Settings, workers: int) -> list[Service] | None:
    """Redis (unless STOREMON_REDIS_URL names one) and the workers, with the settings that make
    every process use them in this process's environment; None (and why) when Redis is
    missing."""
    before: list[Service] = []
    if not settings.redis_url:
        server = shutil.which("redis-server")
        if server is None:
            log("the Celery executor needs Redis, and redis-server is not installed: install it "
                "(Debian, Ubuntu: `apt-get install redis-server`), or set STOREMON_REDIS_URL to "
                "a Redis you run")
            return None
        port = free_port()
        os.environ["STOREMON_REDIS_URL"] = f"redis://{HOST}:{port}/0"
        before.append(redis_service(server, port))
    os.environ["STOREMON_EXECUTOR"] = "celery"
    config_dir = worker_config_dir(get_settings())
    os.environ["PYTHONPATH"] = os.pathsep.join(
        filter(None, [str(config_dir), os.environ.get("PYTHONPATH")])
    )
    return before + [worker_service(k + 1) for k in range(workers)]


def _ignore_stop_signals() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)


def run_up(
    dagster_port: int = 3000, api_port: int = 8000, executor: str | None = None, workers: int = 2
) -> int:
    settings = get_settings()
    for port, option in ((dagster_port, "--dagster-port"), (api_port, "--api-port")):
        if not port_is_free(port):
            log(f"port {port} on {HOST} is in use: choose another with {option}")
            return 2
    started = time.perf_counter()
    os.environ.update({
        "STOREMON_HOME": str(settings.state_dir), "DAGSTER_HOME": str(settings.dagster_home)
    })
    install_instance_config(settings)
    log(f"state folder {settings.state_dir}" + (
        f", {settings.shards} shards" if settings.shards > 1 else "") + (
        "; Dagster storage in PostgreSQL" if settings.dagster_postgres_url else ""))
    distributed: list[Service] = []
    if (executor or settings.executor) == "celery":
        found = celery_services(settings, workers)
        if found is None:
            return 2
        distributed = found
        settings = get_settings()
        log(f"Celery executor: broker {settings.redis_url}, {workers} worker(s)")
    env = service_env(settings)

    _install_stop_signals()
    dagster_url = f"http://{HOST}:{dagster_port}"
    supervisor = Supervisor(
        env,
        settings.services_path,
        log,
        chores=[(SENTINEL_EVERY_SECONDS, RunSentinel(settings))],
    )
    try:
        prepare_state(settings)
        _install_stop_signals()
        code_port = free_port(avoid=(dagster_port, api_port))
        workspace = write_workspace(settings, code_port)
        code_server = code_server_service(code_port)
        code_server.after_restart = lambda: reload_code_location(dagster_url)
        # Redis before everything, the workers once the daemon can launch runs
        broker = [service for service in distributed if service.name == "redis"]
        celery_workers = [service for service in distributed if service.name != "redis"]
        for service in (
            *broker,
            code_server,
            webserver_service(settings, dagster_port, workspace),
            daemon_service(settings, workspace),
            *celery_workers,
            api_service(api_port, dagster_url),
        ):
            supervisor.start(service, READY_TIMEOUT_SECONDS)
        log(f"up in {time.perf_counter() - started:.1f} s. Dagster UI: {dagster_url}  "
            f"REST API and page: http://{HOST}:{api_port} (docs http://{HOST}:{api_port}/docs). "
            "Ctrl-C to stop.")
        return supervisor.watch()
    except KeyboardInterrupt:
        log("stopping")
        return 0
    except (RuntimeError, TimeoutError) as exc:
        log(f"failed: {exc}")
        return 1
    finally:
        _ignore_stop_signals()  # a second Ctrl-C must not leave the children running
        supervisor.stop()
        log("stopped")
