"""Ingest and reports over several shards (docs/semantics.md §2.14), step by step: one step per
shard, each in its own file (Dagster runs them as steps of their own, possibly on other
machines; the CLI runs them one after another), then one step that assembles what they did.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from storemon_pipeline.engine.db import database
from storemon_pipeline.engine.history import (
    assemble_history,
    compute_shard_results,
    load_shard_results,
    partition_as_of,
)
from storemon_pipeline.engine.ingest import (
    FileResult,
    data_version,
    drop_expired_polls,
    ingest_paths,
)
from storemon_pipeline.engine.report import (
    FinishedReport,
    NoPollsError,
    export_report_csv,
    kept_history,
    latest_poll,
    most_downtime,
    result_summary,
)
from storemon_pipeline.engine.shards import Shard, ensure_layout, union_connection
from storemon_pipeline.engine.state import write_latest_poll
from storemon_pipeline.settings import Settings


@dataclass(frozen=True)
class ShardIngest:
    results: list[FileResult]
    expired: int  # polls dropped by the retention


def ingest_shard(
    settings: Settings,
    index: int,
    paths: Sequence[Path],
    progress: Callable[[FileResult], None] | None = None,
) -> ShardIngest:
    """Load shard ``index``'s rows of the files into its file (a file loads once per shard)."""
    ensure_layout(settings.state_dir, settings.shards)
    with database(
        settings.shard_paths[index], wait_seconds=settings.lock_wait_seconds,
        limits=settings.duckdb_limits,
    ) as con:
        results = ingest_paths(
            con, paths, progress, settings.ingest_guards, Shard(index, settings.shards)
        )
        expired = 0
        if settings.retention_days:
            expired = drop_expired_polls(con, kept_history(settings.retention_days))
    return ShardIngest(results, expired)


def finish_ingest(settings: Settings) -> tuple[datetime | None, str]:
    """After the shards' ingest: the newest poll of all and the data version, written to
    ``latest_poll.json`` for the readers that do not open DuckDB."""
    con = union_connection(settings.shard_paths, settings.duckdb_limits)
    try:
        newest, version = latest_poll(con), data_version(con)
    finally:
        con.close()
    write_latest_poll(settings.state_dir, newest, version)
    return newest, version


def newest_poll(settings: Settings) -> datetime:
    """The newest poll of all shards."""
    ensure_layout(settings.state_dir, settings.shards)
    con = union_connection(settings.shard_paths, settings.duckdb_limits)
    try:
        newest = latest_poll(con)
    finally:
        con.close()
    if newest is None:
        raise NoPollsError("no polls are loaded yet: ingest a store-status file first")
    return newest


def report_plan(settings: Settings, hours: Sequence[datetime]) -> dict[datetime, datetime]:
    """The as-of of each partition hour (docs/semantics.md §2.12), from the newest poll of all
    shards."""
    newest = newest_poll(settings)
    return {hour: partition_as_of(hour, newest) for hour in hours}


def report_shard(
    settings: Settings, index: int, run_id: str, as_of_by_hour: dict[datetime, datetime]
) -> list[Path]:
    """Shard ``index``'s rows of the reports, left as files for ``assemble_report``."""
    with database(
        settings.shard_paths[index], wait_seconds=settings.lock_wait_seconds,
        limits=settings.duckdb_limits,
    ) as con:
        return compute_shard_results(
            con, settings.shard_results_dir / run_id, index, as_of_by_hour
        )


def assemble_report(
    settings: Settings,
    run_id: str,
    files: Sequence[Path],
    as_of_by_hour: dict[datetime, datetime],
    csv_path: Path,
    *,
    save_history: bool = True,
) -> FinishedReport:
    """The shards' rows as one report: the history rows of every partition (with
    ``save_history``) and the CSV of the newest, byte-identical to the one-file report. The
    shards' files are removed once assembled."""
    con = union_connection(settings.shard_paths, settings.duckdb_limits)
    try:
        newest_hour = max(as_of_by_hour)
        as_of = as_of_by_hour[newest_hour]
        if save_history:
            rows = assemble_history(con, files, settings.history_path, as_of_by_hour, run_id)
        else:
            rows = 0
            load_shard_results(con, files, [as_of])
        export_report_csv(con, csv_path, as_of)
        assembled = FinishedReport(
            rows, as_of, result_summary(con, as_of), most_downtime(con, as_of),
            latest_poll(con), data_version(con),
        )
    finally:
        con.close()
    for file in files:
        file.unlink(missing_ok=True)
    folder = settings.shard_results_dir / run_id
    if folder.exists() and not any(folder.iterdir()):
        folder.rmdir()
    return assembled
