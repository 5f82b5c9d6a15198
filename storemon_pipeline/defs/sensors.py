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
from storemon_pipeline.engine.ingest import csv_files, file_sha256

# A file modified this recently may still be being written: look again at the next tick.
SETTLE_SECONDS = 2.0


def _file_state(path: Path, known: dict | None) -> dict:
    """Size, mtime and content hash; the hash is reused while size and mtime are unchanged."""
    stat = path.stat()
    if known and known["size"] == stat.st_size and known["mtime_ns"] == stat.st_mtime_ns:
        return known
    return {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns, "sha256": file_sha256(path)}


def incoming_files(
    context: dg.SensorEvaluationContext, storemon: StoremonState
) -> dg.SensorResult:
    """Ingest new or changed CSV files of `$STOREMON_HOME/incoming/`, each content once.

    The cursor remembers each file's content hash: a file seen before with the same content is
    not requested again, a changed one is. All files that are new at one tick go into one run;
    the run key (hash of names, contents and mtimes) makes a repeated request a no-op.
    """
    seen: dict[str, dict] = json.loads(context.cursor) if context.cursor else {}
    folder = storemon.incoming_dir
    folder.mkdir(parents=True, exist_ok=True)
    now = time.time()
    current: dict[str, dict] = {}
    changed: list[tuple[Path, dict]] = []
    for path in csv_files([folder]):
        known = seen.get(path.name)
        if now - path.stat().st_mtime < SETTLE_SECONDS:
            if known:
                current[path.name] = known
            continue
        state = _file_state(path, known)
        current[path.name] = state
        if known is None or known["sha256"] != state["sha256"]:
            changed.append((path, state))
    cursor = json.dumps(current, sort_keys=True)
    if not changed:
        return dg.SensorResult(skip_reason="no new or changed files in incoming/", cursor=cursor)
    identity = "|".join(f"{p.name}@{s['sha256']}@{s['mtime_ns']}" for p, s in changed)
    run_key = hashlib.sha256(identity.encode()).hexdigest()[:32]
    context.log.info(f"new or changed: {', '.join(p.name for p, _ in changed)}")
    return dg.SensorResult(
        run_requests=[
            dg.RunRequest(
                run_key=run_key,
                run_config=dg.RunConfig(
                    ops={"ingest": IngestConfig(paths=[str(p) for p, _ in changed])}
                ),
                tags={"storemon/trigger": "incoming_files", "storemon/files": str(len(changed))},
            )
        ],
        cursor=cursor,
    )


def report_after_ingest(
    context: dg.SensorEvaluationContext, asset_event: dg.EventLogEntry
) -> dg.SensorResult:
    """After polls are ingested (by any run), bring the report partitions they changed up to
    date: the hours the new polls fall in, and the previous latest hour. Neighbouring partitions
    go into one run (a single-run backfill); partitions materialized since are skipped."""
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
                tags={**range_tags(keys), "storemon/trigger": "report_after_ingest"},
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
