"""The report history: one slice of rows per report partition (a UTC hour), in its own file.

Partition ``H`` holds the report as of ``min(H + 1 h, latest poll)`` (docs/semantics.md §2.12).
Its rows live in ``history.duckdb`` beside the main database, not in it: a run holds the main
file for as long as it computes, but writes the history only for the moment it takes to insert
the rows, so readers of the history (``storemon history``, the REST API) are never held up by a
long run. Values are kept unrounded, as integer microseconds.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
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
from storemon_pipeline.engine.report import latest_poll, report_chunks
from storemon_pipeline.engine.state import read_latest_poll

HOUR = timedelta(hours=1)
# A batch's rows (or the shards') go from their files into the history this many (partition,
# store) rows at a time: memory follows the pass, not the backfill.
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
    """The partition hours an ingest asks to compute: the hours its new polls fall in, and the
    hour of the previous latest poll when the latest poll moved on (that partition's as-of was
    the latest poll; it becomes the end of its hour). The later stored partitions a late poll
    changes are the backlog's (``converge_history``)."""
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
    return _write_rows(
        con, path, as_of_by_hour, ("history_save", "history_insert_rows"),
        {"run_id": run_id, "computed_at": utc_now()},
    )


@dataclass(frozen=True)
class Convergence:
    """What bringing the stored partitions up to date with the backlog did."""

    stores: int  # stores the backlog named
    partitions: int  # stored partitions recomputed for some of them
    rows: int  # history rows written
    first_partition: datetime | None = None
    last_partition: datetime | None = None


def backlog_stores(con: duckdb.DuckDBPyConnection) -> int:
    """How many stores have stored partitions that may be out of date."""
    return con.execute("SELECT count(*) FROM history_backlog").fetchone()[0]


def _stored_as_of(path: Path, condition: str, params: dict) -> dict[datetime, datetime]:
    """partition hour -> as-of of the stored partitions that meet ``condition``."""
    found = _read_history(
        path,
        f"SELECT partition_hour, as_of FROM history.uptime_report_partitions WHERE {condition}",
        params,
        30.0,
    )
    return {
        row.partition_hour.to_pydatetime(): row.as_of.to_pydatetime()
        for row in found.itertuples()
    }


def converge_history(
    con: duckdb.DuckDBPyConnection,
    path: Path,
    computed_hours: Sequence[datetime] = (),
    run_id: str | None = None,
) -> Convergence:
    """Recompute, for the stores of the backlog only, every stored partition whose as-of is at
    or after the store's first change (docs/semantics.md §2.12), at its stored as-of.
    ``computed_hours`` are partitions this run computes whole: they are skipped. Call
    ``forget_converged`` once those are saved too.

    Stores whose changes start in the same hour share their partitions; a group is merged into
    the one before it when that adds at most a quarter more partitions, so a late file spanning
    a few hours is one pass, and a stray old poll of one store costs one store's pass.
    """
    con.execute(
        "CREATE OR REPLACE TEMP TABLE consumed_backlog AS SELECT * FROM history_backlog"
    )
    groups = con.execute(
        """
        SELECT min(backlog.changed_from), list(stores.store_id ORDER BY stores.store_id)
        FROM consumed_backlog AS backlog
        JOIN stores USING (store_key)
        GROUP BY date_trunc('hour', backlog.changed_from)
        ORDER BY 1
        """
    ).fetchall()
    skipped = set(computed_hours)
    stored = {
        hour: as_of
        for hour, as_of in (
            _stored_as_of(path, "as_of >= $since", {"since": groups[0][0]}) if groups else {}
        ).items()
        if hour not in skipped
    }
    rows = 0
    revised: set[datetime] = set()
    for since, store_ids in _merged_groups(groups, stored):
        partitions = {hour: as_of for hour, as_of in stored.items() if as_of >= since}
        with scratch_folder(path) as folder:
            files = report_files(con, folder, list(partitions.values()), store_ids)
            # once per group, not per pass: at 100x a fleet's late file is 1.4 M stores
            con.execute(
                "CREATE OR REPLACE TEMP TABLE revised_stores AS "
                "SELECT unnest(?::VARCHAR[]) AS store_id",
                [store_ids],
            )
            rows += _save_in_passes(
                con, files, partitions,
                lambda chunk: _save_revision(con, path, chunk, run_id),
            )
        revised |= set(partitions)
    return Convergence(
        sum(len(ids) for _, ids in groups), len(revised), rows,
        min(revised, default=None), max(revised, default=None),
    )


def partitions_to_compute(
    path: Path, as_of_by_hour: dict[datetime, datetime], only_stale: bool
) -> dict[datetime, datetime]:
    """The partitions to compute whole: all of them, or only those the history lacks, holds as
    of another instant or withheld (the others change only for the backlog's stores)."""
    if not only_stale:
        return as_of_by_hour
    stored = _stored_as_of(  # a withheld partition is computed again
        path, "partition_hour IN (SELECT unnest($hours::TIMESTAMP[])) AND withheld_by IS NULL",
        {"hours": list(as_of_by_hour)},
    )
    return {hour: as_of for hour, as_of in as_of_by_hour.items() if stored.get(hour) != as_of}


@dataclass(frozen=True)
class HistoryUpdate:
    whole: dict[datetime, datetime]  # the partitions computed whole (hour -> as-of)
    rows: int  # history rows written, whole and late
    convergence: Convergence


def update_history(
    con: duckdb.DuckDBPyConnection,
    path: Path,
    as_of_by_hour: dict[datetime, datetime],
    run_id: str | None = None,
    *,
    only_stale: bool = False,
) -> HistoryUpdate:
    """What a report run does to the history: compute these partitions (hour -> as-of) whole
    (with ``only_stale``, those the history lacks or holds as of another instant), and every
    other stored partition the backlog's late data changed, for its stores; then forget the
    backlog. ``report_results`` is left holding the newest partition's report."""
    whole = partitions_to_compute(path, as_of_by_hour, only_stale)
    convergence = converge_history(con, path, list(whole), run_id)
    rows = compute_history(con, path, whole, run_id)
    newest = max(as_of_by_hour, default=None)
    if newest is not None and newest not in whole:  # stored, up to date with the late data now
        load_stored_report(con, path, newest)
    forget_converged(con)
    return HistoryUpdate(whole, rows + convergence.rows, convergence)


def load_stored_report(con: duckdb.DuckDBPyConnection, path: Path, hour: datetime) -> None:
    """``report_results`` from a stored partition's rows (they are its report, unrounded), for
    its CSV and summaries without computing it again."""
    attach_history(con, path, read_only=True)
    try:
        con.execute(
            """
            CREATE OR REPLACE TEMP TABLE report_results AS
            SELECT as_of, NULL::INTEGER AS store_key, store_id,
                   uptime_hour_us, uptime_day_us, uptime_week_us,
                   business_hour_us, business_day_us, business_week_us
            FROM history.uptime_report
            WHERE partition_hour = ?
            """,
            [hour],
        )
    finally:
        con.execute("DETACH history")


def withhold_partitions(path: Path, hours: Sequence[datetime], check: str) -> None:
    """Mark these stored partitions as broken by a blocking check: the history's readers leave
    them out until a run computes them again (their rows stay, for the checks and for a look)."""
    con = connect_memory()
    try:
        con.execute(
            "CREATE TEMP TABLE withheld_partitions AS "
            "SELECT unnest(?::TIMESTAMP[]) AS partition_hour",
            [list(hours)],
        )
        _write_history(con, path, ("history_withhold",), {"check": check})
    finally:
        con.close()


def consumed_backlog(con: duckdb.DuckDBPyConnection) -> list[tuple[int, datetime]]:
    """The backlog rows the last ``converge_history`` worked through: (store_key, noted_at)."""
    return con.execute("SELECT store_key, noted_at FROM consumed_backlog").fetchall()


def forget_converged(
    con: duckdb.DuckDBPyConnection, consumed: Sequence[tuple[int, datetime]] | None = None
) -> None:
    """Forget the backlog ``converge_history`` worked through, once the run's partitions are all
    saved (a run that dies before leaves it for the next); a store an ingest changed again since
    stays. ``consumed``: its (store_key, noted_at) rows, when it was read through another
    connection (over all shards)."""
    if consumed is not None:
        con.execute(
            "CREATE OR REPLACE TEMP TABLE consumed_backlog AS "
            "SELECT unnest(?::BIGINT[]) AS store_key, unnest(?::TIMESTAMP[]) AS noted_at",
            [[key for key, _ in consumed], [noted for _, noted in consumed]],
        )
    con.execute(
        "DELETE FROM history_backlog USING consumed_backlog AS consumed "
        "WHERE history_backlog.store_key = consumed.store_key "
        "AND history_backlog.noted_at = consumed.noted_at"
    )


def _merged_groups(
    groups: list[tuple[datetime, list[str]]], stored: dict[datetime, datetime]
) -> Iterator[tuple[datetime, list[str]]]:
    """The backlog's groups (earliest change, stores), oldest first, each merged into the one
    before it when that adds at most a quarter more partitions; groups with no stored partition
    at or after their change are dropped."""
    def partitions_since(since: datetime) -> int:
        return sum(1 for as_of in stored.values() if as_of >= since)

    current: tuple[datetime, list[str]] | None = None
    for since, store_ids in groups:
        own = partitions_since(since)
        if own == 0:
            continue
        if current is not None and partitions_since(current[0]) <= 1.25 * own:
            current = (current[0], current[1] + store_ids)
            continue
        if current is not None:
            yield current
        current = (since, list(store_ids))
    if current is not None:
        yield current


def _save_revision(
    con: duckdb.DuckDBPyConnection,
    path: Path,
    as_of_by_hour: dict[datetime, datetime],
    run_id: str | None,
) -> int:
    """Replace the rows of the stores of the temp table ``revised_stores`` in these stored
    partitions with ``report_results``."""
    return _write_rows(
        con, path, as_of_by_hour,
        ("history_revise", "history_insert_rows", "history_revise_totals"),
        {"run_id": run_id, "revised_at": utc_now()},
    )


def _write_rows(
    con: duckdb.DuckDBPyConnection,
    path: Path,
    as_of_by_hour: dict[datetime, datetime],
    scripts: Sequence[str],
    params: dict[str, object],
) -> int:
    """Write the rows of ``report_results`` of these partitions (``saved_partitions``) to the
    history with these scripts; returns how many."""
    con.execute(
        "CREATE OR REPLACE TEMP TABLE saved_partitions AS "
        "SELECT unnest(?::TIMESTAMP[]) AS partition_hour, unnest(?::TIMESTAMP[]) AS as_of",
        [list(as_of_by_hour), list(as_of_by_hour.values())],
    )
    _write_history(con, path, scripts, params)
    return con.execute(
        "SELECT count(*) FROM report_results SEMI JOIN saved_partitions USING (as_of)"
    ).fetchone()[0]


def _write_history(
    con: duckdb.DuckDBPyConnection, path: Path, scripts: Sequence[str], params: dict[str, object]
) -> None:
    """Run scripts over the history file in one transaction, attached only for that moment."""
    attach_history(con, path)
    try:
        con.begin()
        try:
            for script in scripts:
                run_script(con, script, params)
            con.commit()
        except BaseException:
            con.rollback()
            raise
    finally:
        con.execute("DETACH history")


def _passes(
    as_of_by_hour: dict[datetime, datetime], per_pass: int
) -> Iterator[dict[datetime, datetime]]:
    hours = sorted(as_of_by_hour)
    for first in range(0, len(hours), per_pass):
        yield {hour: as_of_by_hour[hour] for hour in hours[first:first + per_pass]}


def compute_history(
    con: duckdb.DuckDBPyConnection,
    path: Path,
    as_of_by_hour: dict[datetime, datetime],
    run_id: str | None = None,
) -> int:
    """Compute the reports of these partitions in one pass and save them to the history;
    returns the rows written. The rows go chunk by chunk to files beside the history, then
    into it a pass of partitions at a time: memory follows a chunk and a pass, never the
    batch. ``report_results`` is left holding the last pass (the newest partitions)."""
    if not as_of_by_hour:
        return 0
    with scratch_folder(path) as folder:
        files = report_files(con, folder, list(as_of_by_hour.values()))
        return assemble_history(con, files, path, as_of_by_hour, run_id)


@contextmanager
def scratch_folder(path: Path) -> Iterator[Path]:
    """A folder beside the history for a batch's rows on their way into it, removed after."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".report-rows-", dir=path.parent) as folder:
        yield Path(folder)


def report_files(
    con: duckdb.DuckDBPyConnection,
    folder: Path,
    as_ofs: Sequence[datetime],
    store_ids: Sequence[str] | None = None,
    prefix: str = "",
) -> list[Path]:
    """The reports as of these instants (of these stores), computed in one pass and written
    chunk by chunk of stores as Parquet files ``<folder>/<prefix><n>.parquet``; returns them.
    ``report_results`` holds one chunk's rows at a time (and is left empty)."""
    files = []
    for number, _ in enumerate(report_chunks(con, as_ofs, store_ids)):
        path = folder / f"{prefix}{number}.parquet"
        with atomic_target(path) as temporary:
            # sorted by instant: a pass of partitions reads only its row groups of every file
            con.execute(
                f"COPY (FROM report_results ORDER BY as_of, store_key) TO '{temporary}' "
                "(FORMAT parquet)"
            )
        con.execute("DELETE FROM report_results")
        files.append(path)
    return files


def compute_shard_results(
    con: duckdb.DuckDBPyConnection,
    out_dir: Path,
    shard_index: int,
    as_of_by_hour: dict[datetime, datetime],
) -> list[Path]:
    """One shard's rows of these partitions' reports, computed in one pass, as Parquet files
    ``<out_dir>/<shard>-<n>.parquet`` (what ``load_shard_results`` assembles); returns them.
    Computing again replaces them: a retried step counts nothing twice."""
    out_dir.mkdir(parents=True, exist_ok=True)
    for stale in out_dir.glob(f"{shard_index}-*.parquet"):
        stale.unlink()
    return report_files(
        con, out_dir, list(as_of_by_hour.values()), prefix=f"{shard_index}-"
    )


def _parquet(files: Sequence[Path]) -> str:
    """The shards' result files as one table expression (paths of our own making)."""
    return "read_parquet([" + ", ".join(f"'{file}'" for file in files) + "])"


def load_shard_results(
    con: duckdb.DuckDBPyConnection, files: Sequence[Path], as_ofs: Sequence[datetime]
) -> None:
    """``report_results`` of these as-of instants from the shards' files: the rows of the whole
    reports (each store is in one shard)."""
    # the range prunes the row groups of files sorted by instant (``report_files``)
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE report_results AS SELECT * FROM {_parquet(files)} "
        "WHERE as_of BETWEEN $first AND $last AND as_of IN (SELECT unnest($as_ofs::TIMESTAMP[]))",
        {"as_ofs": list(as_ofs), "first": min(as_ofs), "last": max(as_ofs)},
    )


def assemble_history(
    con: duckdb.DuckDBPyConnection,
    files: Sequence[Path],
    path: Path,
    as_of_by_hour: dict[datetime, datetime],
    run_id: str | None = None,
) -> int:
    """Save the rows of these partitions from their files (a batch's chunks, or the shards')
    to the history; ``report_results`` is left holding the newest. Returns the rows
    written."""
    return _save_in_passes(
        con, files, as_of_by_hour, lambda chunk: save_history(con, path, chunk, run_id)
    )


def _save_in_passes(
    con: duckdb.DuckDBPyConnection,
    files: Sequence[Path],
    as_of_by_hour: dict[datetime, datetime],
    save: Callable[[dict[datetime, datetime]], int],
) -> int:
    """Load the partitions' rows from their files into ``report_results`` and ``save`` them, as
    many partitions at once as ROWS_PER_PASS allows, oldest first (each partition is replaced
    in one transaction); returns the rows saved."""
    total = con.execute(f"SELECT count(*) FROM {_parquet(files)}").fetchone()[0]
    per_pass = max(1, ROWS_PER_PASS * len(as_of_by_hour) // max(total, 1))
    written = 0
    for chunk in _passes(as_of_by_hour, per_pass):
        load_shard_results(con, files, list(chunk.values()))
        written += save(chunk)
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
        WHERE ($as_of::TIMESTAMP IS NULL OR as_of = $as_of::TIMESTAMP) AND withheld_by IS NULL
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
