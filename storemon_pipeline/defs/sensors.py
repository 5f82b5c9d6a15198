"""Automation: ingest what lands in `incoming/`, then bring the latest report up to date; post
the alerts' events to the webhooks."""


import functools
import hashlib
import json
import time
from pathlib import Path

import dagster as dg
import duckdb

from storemon_pipeline.defs.assets import POLLS, IngestConfig
from storemon_pipeline.defs.jobs import ingest_job, refresh_job
from storemon_pipeline.defs.partitions import contiguous_ranges, is_materialized, range_tags
from storemon_pipeline.defs.resources import StoremonState
from storemon_pipeline.defs.tags import RECOMPUTE_STALE, RECOMPUTE_TAG, trigger_tags
from storemon_pipeline.engine.db import database, is_lock_error
from storemon_pipeline.engine.delivery import deliver_due_events, read_delivery_status
from storemon_pipeline.engine.ingest import csv_files, file_sha256
from storemon_pipeline.engine.instants import utc_now

# A file modified this recently may still be being written: look again at the next tick.
SETTLE_SECONDS = 2.0
# A run in one of these has not started: files given to a new run would wait as long.
NOT_STARTED = (None, dg.DagsterRunStatus.NOT_STARTED, dg.DagsterRunStatus.QUEUED)
# The delivery sensor waits this long for the DuckDB file; a run holding it longer is writing,
# and the events are posted at a later tick.
DELIVERY_LOCK_WAIT_SECONDS = 2.0


def _file_state(path: Path, known: dict | None) -> dict:
    """Size, mtime and content hash; the hash is reused while size and mtime are unchanged."""
    stat = path.stat()
    if known and known["size"] == stat.st_size and known["mtime_ns"] == stat.st_mtime_ns:
        return known
    return {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns, "sha256": file_sha256(path)}


def incoming_files(
    context: dg.SensorEvaluationContext, storemon: StoremonState
) -> dg.SensorResult:
    """Ingest new or changed CSV files of `$STOREMON_HOME/incoming/`, each content once, and
    again if the run that was to ingest it failed (its process killed, say): nothing is lost.

    The cursor remembers each file's state (size, mtime, content hash) and the requests whose
    runs have not succeeded yet. All files that are new at one tick go into one run; the run
    key (hash of names, contents, mtimes and the attempt) makes a repeated request a no-op.
    While a run it asked for has not started yet, new files wait and go together into the next
    run: when runs queue up (a busy machine, a feed faster than runs start), the queue holds one
    ingest run, not one per file.
    """
    cursor = json.loads(context.cursor) if context.cursor else {}
    seen: dict[str, dict] = cursor.get("files", {})
    pending: list[dict] = cursor.get("pending", [])
    folder = storemon.incoming_dir
    folder.mkdir(parents=True, exist_ok=True)
    now = time.time()
    current: dict[str, dict] = {}
    changed: list[str] = []
    for path in csv_files([folder]):
        known = seen.get(path.name)
        if now - path.stat().st_mtime < SETTLE_SECONDS:
            if known:
                current[path.name] = known
            continue
        state = _file_state(path, known)
        current[path.name] = state
        if known is None or known["sha256"] != state["sha256"]:
            changed.append(path.name)

    requests: list[dict] = []
    still_pending = []
    waiting_to_start = False
    for request in pending:
        status = _run_status(context.instance, request["run_key"])
        if status in (dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED):
            files = [name for name in request["files"] if name in current]
            if files:
                context.log.warning(f"ingest run failed for {', '.join(files)}: asking again")
                requests.append({"files": files, "attempt": request["attempt"] + 1})
        elif status != dg.DagsterRunStatus.SUCCESS:
            still_pending.append(request)  # queued, running, or not created yet
            waiting_to_start |= status in NOT_STARTED
    waiting = ""
    if changed and waiting_to_start:
        for name in changed:  # seen again at the next tick
            if name in seen:
                current[name] = seen[name]
            else:
                del current[name]
        waiting = f"{len(changed)} new file(s) wait for the queued ingest run to start"
        changed = []
    if changed:
        requests.insert(0, {"files": changed, "attempt": 0})
    run_requests = []
    for request in requests:
        identity = "|".join(
            f"{name}@{current[name]['sha256']}@{current[name]['mtime_ns']}"
            for name in request["files"]
        )
        request["run_key"] = hashlib.sha256(
            f"{identity}#{request['attempt']}".encode()
        ).hexdigest()[:32]
        still_pending.append(request)
        run_requests.append(
            dg.RunRequest(
                run_key=request["run_key"],
                run_config=dg.RunConfig(
                    ops={"ingest": IngestConfig(paths=[str(folder / n) for n in request["files"]])}
                ),
                tags={
                    **trigger_tags("sensor"),
                    "storemon/files": str(len(request["files"])),
                    "storemon/attempt": str(request["attempt"]),
                },
            )
        )
    new_cursor = json.dumps({"files": current, "pending": still_pending}, sort_keys=True)
    if not run_requests:
        return dg.SensorResult(
            skip_reason=waiting or "no new or changed files in incoming/", cursor=new_cursor
        )
    if changed:
        context.log.info(f"new or changed: {', '.join(changed)}")
    return dg.SensorResult(run_requests=run_requests, cursor=new_cursor)


def _run_status(instance: dg.DagsterInstance, run_key: str) -> dg.DagsterRunStatus | None:
    """The status of the newest run a sensor request with this key created (None: none yet)."""
    records = instance.get_run_records(
        dg.RunsFilter(tags={"dagster/run_key": run_key}), limit=1
    )
    return records[0].dagster_run.status if records else None


def report_after_ingest(
    context: dg.SensorEvaluationContext, asset_event: dg.EventLogEntry
) -> dg.SensorResult:
    """After polls are ingested (by any run), bring the report partitions they changed up to
    date: the hours the new polls fall in, and the previous latest hour. Neighbouring partitions
    go into one run (a single-run backfill); partitions materialized since are skipped. The run
    computes whole only the partitions that are new or whose as-of moved, and recomputes the
    stored partitions that late polls or a new snapshot changed for those stores alone."""
    materialization = asset_event.asset_materialization
    entry = (
        materialization.metadata.get("report_partitions_to_refresh") if materialization else None
    )
    keys = [
        key for key in (entry.value if entry is not None else [])
        if not is_materialized(context.instance, key, after=asset_event.timestamp)
    ]
    if not keys:
        return dg.SensorResult(skip_reason="the ingest changed no report partition")
    ranges = contiguous_ranges(context.instance, keys)
    return dg.SensorResult(
        run_requests=[
            dg.RunRequest(
                run_key=f"after-ingest-{asset_event.run_id}-{keys[0]}-{keys[-1]}",
                tags={
                    **range_tags(keys),
                    **trigger_tags("sensor"),
                    RECOMPUTE_TAG: RECOMPUTE_STALE,
                },
            )
            for keys in ranges
        ]
    )


def alert_deliveries(
    context: dg.SensorEvaluationContext, storemon: StoremonState
) -> dg.SkipReason:
    """Post the alerts' due events to the webhooks (engine: ``delivery.deliver_due_events``):
    in the daemon's sensor loop, so nothing more has to be run and supervised, and every tick
    shows in the UI. The database is held only to read the due events and to record the
    attempts, never while a webhook answers; it is not opened at all while the outbox's status
    (alerts/delivery.json) says nothing is due. It never requests a run."""
    settings = storemon.settings
    urls = settings.alert_webhook_urls
    if not urls:
        return dg.SkipReason(
            "no webhook is set (STOREMON_ALERT_WEBHOOK_URLS): events wait in the outbox"
        )
    status = read_delivery_status(storemon.state_dir)
    if status is not None and not status.due(utc_now()):
        return dg.SkipReason(
            f"nothing due: {status.pending} pending, {status.delivered} delivered, "
            f"{status.dead} dead"
        )
    secret = settings.alert_secret.get_secret_value() if settings.alert_secret else None

    connect = functools.partial(
        database,
        storemon.duckdb_path,
        wait_seconds=DELIVERY_LOCK_WAIT_SECONDS,
        limits=settings.duckdb_limits,
    )
    try:
        done = deliver_due_events(
            connect,
            storemon.state_dir,
            urls,
            secret=secret,
            retry_max_hours=settings.alert_retry_max_hours,
        )
    except duckdb.IOException as exc:
        if not is_lock_error(exc):
            raise
        return dg.SkipReason("the database is held by a run: the due events wait a tick")
    summary = (
        f"posted {done.posted}, delivered {done.delivered}, failed {done.failed}; "
        f"{done.status.pending} pending, {done.status.dead} dead"
    )
    if done.failed:
        context.log.warning(f"{summary}; last error: {done.status.last_error}")
    else:
        context.log.info(summary)
    return dg.SkipReason(summary)


def build_sensors(interval_seconds: int, *, alerts: bool = True) -> list[dg.SensorDefinition]:
    """The sensors, on by default, looking for work every ``interval_seconds``; the alerts'
    delivery only where the alerts are kept (one DuckDB file)."""
    sensors = [
        dg.sensor(
            job=ingest_job,
            minimum_interval_seconds=interval_seconds,
            default_status=dg.DefaultSensorStatus.RUNNING,
        )(incoming_files),
        dg.asset_sensor(
            asset_key=POLLS,
            job=refresh_job,
            minimum_interval_seconds=interval_seconds,
            default_status=dg.DefaultSensorStatus.RUNNING,
        )(report_after_ingest),
    ]
    if alerts:
        sensors.append(
            dg.sensor(
                minimum_interval_seconds=interval_seconds,
                default_status=dg.DefaultSensorStatus.RUNNING,
            )(alert_deliveries)
        )
    return sensors
