"""Automation: ingest what lands in `incoming/`, then bring the latest report up to date."""


import hashlib
import json
import time
from pathlib import Path

import dagster as dg

from storemon_pipeline.defs.assets import POLLS, IngestConfig
from storemon_pipeline.defs.jobs import ingest_job, refresh_job
from storemon_pipeline.defs.partitions import contiguous_ranges, is_materialized, range_tags
from storemon_pipeline.defs.resources import StoremonState
from storemon_pipeline.defs.tags import RECOMPUTE_STALE, RECOMPUTE_TAG, trigger_tags
from storemon_pipeline.engine.ingest import csv_files, file_sha256

# A file modified this recently may still be being written: look again at the next tick.
SETTLE_SECONDS = 2.0
# A run in one of these has not started: files given to a new run would wait as long.
NOT_STARTED = (None, dg.DagsterRunStatus.NOT_STARTED, dg.DagsterRunStatus.QUEUED)


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


def build_sensors(interval_seconds: int) -> list[dg.SensorDefinition]:
    """Both sensors, on by default, looking for work every ``interval_seconds``."""
    return [
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
