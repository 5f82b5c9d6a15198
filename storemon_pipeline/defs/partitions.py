"""Hourly report partitions: partition H holds the report as of ``min(end of H, latest poll)``.

So the partition holding the latest poll is "the report as of the latest poll", and the older
ones are each store's uptime history, hour by hour. Partitions reach one hour past now
(``end_offset=1``) so that live data's latest poll always has its partition.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import dagster as dg

from storemon_pipeline.engine.instants import utc_now
from storemon_pipeline.engine.state import read_latest_poll
from storemon_pipeline.settings import Settings, get_settings

PARTITION_KEY_FORMAT = "%Y-%m-%d-%H:%M"

report_partitions = dg.HourlyPartitionsDefinition(
    start_date=get_settings().partitions_start,
    timezone="UTC",
    end_offset=1,
    fmt=PARTITION_KEY_FORMAT,
)


def partition_key_for(instant: datetime) -> str:
    """The key of the hourly partition holding a (naive UTC) instant, clamped to the partitions
    that exist: before the first, the first; after the last, the last."""
    key = instant.replace(minute=0, second=0, microsecond=0).strftime(PARTITION_KEY_FORMAT)
    first = report_partitions.get_first_partition_key()
    last = report_partitions.get_last_partition_key()
    if first is not None and key < first:
        return first
    if last is not None and key > last:
        return last
    return key


def partition_window(partition_key: str) -> tuple[datetime, datetime]:
    """The partition's hour as naive UTC instants [start, end)."""
    start = datetime.strptime(partition_key, PARTITION_KEY_FORMAT)
    return start, start + timedelta(hours=1)


def partition_as_of(partition_key: str, latest_poll: datetime | None) -> datetime:
    """The as-of of a partition (docs/semantics.md §2.12): the end of its hour, or the latest
    poll if that is earlier."""
    _, end = partition_window(partition_key)
    return end if latest_poll is None else min(end, latest_poll)


def is_materialized(instance: dg.DagsterInstance, partition: str, after: float = 0.0) -> bool:
    """Whether the report partition was materialized (after the given epoch seconds)."""
    from storemon_pipeline.defs.assets import uptime_report

    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=uptime_report.key, asset_partitions=[partition]),
        limit=1,
    ).records
    return bool(records) and records[0].timestamp > after


def latest_report_partition_key(settings: Settings | None = None) -> str:
    """The partition to launch for "the report as of the latest poll", without opening DuckDB.

    Reads ``$STOREMON_HOME/latest_poll.json`` (written by every ingest run); if there is none,
    asks the DuckDB file read-only; if that has no polls either, the last partition (whose report
    is then as of the latest poll, whenever it runs).
    """
    settings = settings or get_settings()
    latest = read_latest_poll(settings.state_dir)
    if latest is None:
        latest = _latest_poll_from_duckdb(settings.duckdb_path, settings.lock_wait_seconds)
    if latest is None:
        latest = utc_now()
    return partition_key_for(latest)


def _latest_poll_from_duckdb(path: Path, wait_seconds: float) -> datetime | None:
    if not path.exists():
        return None
    from storemon_pipeline.engine.db import connect
    from storemon_pipeline.engine.report import latest_poll

    with connect(path, read_only=True, wait_seconds=wait_seconds) as con:
        return latest_poll(con)
