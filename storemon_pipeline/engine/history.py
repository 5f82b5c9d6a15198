"""The report history: one slice of rows per report partition (a UTC hour), in its own file.

Partition ``H`` holds the report as of ``min(H + 1 h, latest poll)`` (docs/semantics.md §2.12).
Its rows live in ``history.duckdb`` beside the main database, not in it: a run holds the main
file for as long as it computes, but writes the history only for the moment it takes to insert
the rows, so readers of the history (``storemon history``, the REST API) are never held up by a
long run. Values are kept unrounded, as integer microseconds.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import duckdb
import pandas as pd

from storemon_pipeline.engine.db import (
    connect_memory,
    database,
    retry_while_locked,
    run_script,
    sql,
)
from storemon_pipeline.engine.files import atomic_target
from storemon_pipeline.engine.instants import utc_now
from storemon_pipeline.engine.report import compute_reports, latest_poll
from storemon_pipeline.engine.state import read_latest_poll

HOUR = timedelta(hours=1)
# A pass over many partitions computes this many (partition, store) rows at most: memory follows
# the pass (about 1 GB per million rows), not the backfill.
ROWS_PER_PASS = 1_000_000
PARTITION_KEY_FORMAT = "%Y-%m-%d-%H:%M"


def partition_hour_of(instant: datetime) -> datetime:
    """The hour of the report partition holding a (naive UTC) instant."""
    return instant.replace(minute=0, second=0, microsecond=0)


def partition_key(instant: datetime) -> str:
    """The key of the report partition holding a (naive UTC) instant."""
    return partition_hour_of(instant).strftime(PARTITION_KEY_FORMAT)


def partition_hour(key: str) -> datetime:
    return datetime.strptime(key, PARTITION_KEY_FORMAT)


def partition_as_of(hour: datetime, latest_poll: datetime | None) -> datetime:
    """The as-of of a partition: the end of its hour, or the latest poll if that is earlier."""
    end = hour + HOUR
    return end if latest_poll is None else min(end, latest_poll)


def latest_report_partition_key(state_dir: Path, duckdb_path: Path, wait_seconds: float) -> str:
    """The partition of "the report as of the latest poll", without holding up on DuckDB.

    Reads ``latest_poll.json`` in ``state_dir`` (written by every ingest); if there is none,
    asks the DuckDB file read-only (waiting up to ``wait_seconds`` while a run writes it); if
    that has no polls either, the current hour.
    """
    latest = read_latest_poll(state_dir)
    if latest is None and duckdb_path.exists():
        with database(duckdb_path, read_only=True, wait_seconds=wait_seconds) as con:
            latest = latest_poll(con)
    return partition_key(latest or utc_now())


def partitions_changed_by(
    new_poll_hours: list[datetime], previous_latest: datetime | None, latest: datetime | None
) -> list[datetime]:
    """The partition hours whose report an ingest changed: the hours its polls fall in, and the
    hour of the previous latest poll when the latest poll moved on (that partition's as-of was
    the latest poll; it becomes the end of its hour). Later partitions of a late poll keep the
    report they had: backfill them to account for it."""
    changed = set(new_poll_hours)
    if previous_latest is not None and latest is not None and latest > previous_latest:
        changed.add(partition_hour_of(previous_latest))
    return sorted(changed)


def poll_hours(con: duckdb.DuckDBPyConnection) -> list[datetime]:
    """Every UTC hour that holds a poll: the report partitions there should be."""
    return [
        row[0]
        for row in con.execute(
            "SELECT DISTINCT date_trunc('hour', ts) AS hour FROM polls ORDER BY hour"
        ).fetchall()
    ]


def attach_history(
    con: duckdb.DuckDBPyConnection, path: Path, *, read_only: bool = False,
    wait_seconds: float = 30.0,
) -> None:
    """Attach the history file as ``history`` (created with its tables when writing)."""
    mode = " (READ_ONLY)" if read_only else ""
    retry_while_locked(lambda: con.execute(f"ATTACH '{path}' AS history{mode}"), wait_seconds)
    if not read_only:
        con.execute(sql("history_schema"))


def save_history(
    con: duckdb.DuckDBPyConnection,
    path: Path,
    as_of_by_hour: dict[datetime, datetime],
    run_id: str | None = None,
) -> int:
    """Replace the rows of the partitions of ``as_of_by_hour`` (partition hour -> as-of) with
    their reports in ``report_results``; returns the rows written."""
    con.execute(
        "CREATE OR REPLACE TEMP TABLE saved_partitions AS "
        "SELECT unnest(?::TIMESTAMP[]) AS partition_hour, unnest(?::TIMESTAMP[]) AS as_of",
        [list(as_of_by_hour), list(as_of_by_hour.values())],
    )
    attach_history(con, path)
    try:
        con.begin()
        try:
            run_script(con, "history_save", {"run_id": run_id, "computed_at": utc_now()})
            con.commit()
        except BaseException:
            con.rollback()
            raise
    finally:
        con.execute("DETACH history")
    return con.execute(
        "SELECT count(*) FROM report_results SEMI JOIN saved_partitions USING (as_of)"
    ).fetchone()[0]


def _passes(
    as_of_by_hour: dict[datetime, datetime], per_pass: int
) -> Iterator[dict[datetime, datetime]]:
    hours = sorted(as_of_by_hour)
    for first in range(0, len(hours), per_pass):
        yield {hour: as_of_by_hour[hour] for hour in hours[first:first + per_pass]}


def report_passes(
    con: duckdb.DuckDBPyConnection,
    as_of_by_hour: dict[datetime, datetime],
    rows_per_pass: int = ROWS_PER_PASS,
) -> Iterator[dict[datetime, datetime]]:
    """Compute the reports of these partitions (hour -> as-of), oldest first, as many as-of
    instants per pass as ``rows_per_pass`` allows; yields each pass's partitions while
    ``report_results`` holds them (after the last, the newest partition)."""
    stores = con.execute("SELECT count(*) FROM stores").fetchone()[0]
    for chunk in _passes(as_of_by_hour, max(1, rows_per_pass // max(stores, 1))):
        compute_reports(con, list(chunk.values()))
        yield chunk


def compute_history(
    con: duckdb.DuckDBPyConnection,
    path: Path,
    as_of_by_hour: dict[datetime, datetime],
    run_id: str | None = None,
    rows_per_pass: int = ROWS_PER_PASS,
) -> int:
    """Compute the reports of these partitions and save them to the history; returns the rows
    written."""
    return sum(
        save_history(con, path, chunk, run_id)
        for chunk in report_passes(con, as_of_by_hour, rows_per_pass)
    )


def compute_shard_results(
    con: duckdb.DuckDBPyConnection,
    out_dir: Path,
    shard_index: int,
    as_of_by_hour: dict[datetime, datetime],
    rows_per_pass: int = ROWS_PER_PASS,
) -> list[Path]:
    """One shard's rows of these partitions' reports, pass by pass, as Parquet files
    ``<out_dir>/<shard>-<pass>.parquet`` (what ``load_shard_results`` assembles); returns them.
    Computing again replaces them: a retried step counts nothing twice."""
    out_dir.mkdir(parents=True, exist_ok=True)
    for stale in out_dir.glob(f"{shard_index}-*.parquet"):
        stale.unlink()
    files = []
    for number, _ in enumerate(report_passes(con, as_of_by_hour, rows_per_pass)):
        path = out_dir / f"{shard_index}-{number}.parquet"
        with atomic_target(path) as temporary:
            con.execute(f"COPY report_results TO '{temporary}' (FORMAT parquet)")
        files.append(path)
    return files


def _parquet(files: Sequence[Path]) -> str:
    """The shards' result files as one table expression (paths of our own making)."""
    return "read_parquet([" + ", ".join(f"'{file}'" for file in files) + "])"


def load_shard_results(
    con: duckdb.DuckDBPyConnection, files: Sequence[Path], as_ofs: Sequence[datetime]
) -> None:
    """``report_results`` of these as-of instants from the shards' files: the rows of the whole
    reports (each store is in one shard)."""
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE report_results AS SELECT * FROM {_parquet(files)} "
        "WHERE as_of IN (SELECT unnest($as_ofs::TIMESTAMP[]))",
        {"as_ofs": list(as_ofs)},
    )


def assemble_history(
    con: duckdb.DuckDBPyConnection,
    files: Sequence[Path],
    path: Path,
    as_of_by_hour: dict[datetime, datetime],
    run_id: str | None = None,
    rows_per_pass: int = ROWS_PER_PASS,
) -> int:
    """Save the shards' rows of these partitions to the history, as many partitions at once as
    ``rows_per_pass`` allows; ``report_results`` is left holding the newest. Returns the rows
    written."""
    total = con.execute(f"SELECT count(*) FROM {_parquet(files)}").fetchone()[0]
    per_pass = max(1, rows_per_pass * len(as_of_by_hour) // max(total, 1))
    written = 0
    for chunk in _passes(as_of_by_hour, per_pass):
        load_shard_results(con, files, list(chunk.values()))
        written += save_history(con, path, chunk, run_id)
    return written


@dataclass(frozen=True)
class StoreHistory:
    store_id: str
    known: bool  # the store has a row in some partition
    rows: pd.DataFrame  # partition_hour, as_of, the six values as in the CSV, oldest first


def read_store_history(
    path: Path,
    store_id: str,
    since: datetime | None = None,
    until: datetime | None = None,
    wait_seconds: float = 30.0,
) -> StoreHistory:
    """A store's rows in every partition whose as-of lies in [since, until], with the values of
    the report CSV (text, two decimals)."""
    rows = _read_history(
        path, sql("history_store"), {"store_id": store_id, "since": since, "until": until},
        wait_seconds,
    )
    known = not rows.empty or not _read_history(
        path, "SELECT 1 FROM history.uptime_report WHERE store_id = $store_id LIMIT 1",
        {"store_id": store_id}, wait_seconds,
    ).empty
    return StoreHistory(store_id, known, rows)


def _read_history(path: Path, query: str, params: dict, wait_seconds: float) -> pd.DataFrame:
    """A query over the history file, opened read-only (an empty frame without one)."""
    if not path.exists():
        return pd.DataFrame()
    con = connect_memory()
    try:
        attach_history(con, path, read_only=True, wait_seconds=wait_seconds)
        return con.execute(query, params).df()
    finally:
        con.close()


def read_fleet_history(
    path: Path,
    since: datetime | None = None,
    until: datetime | None = None,
    wait_seconds: float = 30.0,
) -> pd.DataFrame:
    """partition_hour, as_of, stores and the fleet's uptime share of the last hour, day and week
    of every partition in [since, until] (default: the newest week of partitions)."""
    return _read_history(
        path, sql("history_fleet"), {"since": since, "until": until}, wait_seconds
    )


@dataclass(frozen=True)
class ReportSource:
    """The stored partition a report's numbers come from, and the run that computed it."""

    partition_hour: datetime
    as_of: datetime
    run_id: str | None


def report_source(
    path: Path, as_of: datetime | None = None, wait_seconds: float = 30.0
) -> ReportSource | None:
    """The newest partition whose as-of is ``as_of`` (default: the newest partition), if any."""
    found = _read_history(
        path,
        """
        SELECT partition_hour, as_of, run_id
        FROM history.uptime_report_partitions
        WHERE $as_of::TIMESTAMP IS NULL OR as_of = $as_of::TIMESTAMP
        ORDER BY partition_hour DESC, computed_at DESC
        LIMIT 1
        """,
        {"as_of": as_of},
        wait_seconds,
    )
    if found.empty:
        return None
    row = found.iloc[0]
    run_id = None if pd.isna(row["run_id"]) else str(row["run_id"])
    return ReportSource(
        row["partition_hour"].to_pydatetime(), row["as_of"].to_pydatetime(), run_id
    )


def saved_partitions(con: duckdb.DuckDBPyConnection, hours: Sequence[datetime]) -> pd.DataFrame:
    """partition_hour, as_of, stores of each hour asked that has rows (history attached)."""
    return con.execute(
        """
        SELECT partition_hour, as_of, stores
        FROM history.uptime_report_partitions
        WHERE partition_hour IN (SELECT unnest(?::TIMESTAMP[]))
        ORDER BY partition_hour
        """,
        [list(hours)],
    ).df()
