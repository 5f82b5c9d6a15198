"""Uptime reports as of instants (docs/semantics.md §2), computed set-based in DuckDB.

A report's cost follows its week and its stores, not the history kept: it reads the polls of a
bounded look-back (its week and a day before it) and business windows for that span only. The
polls before the look-back matter for a few stores only, those whose last usable poll before the
week is older (silent stores, stores that are never polled in hours); for them alone the polls
are searched further back, in chunks that double in length. Any number of as-of instants are
computed in one pass (``report_values.sql``).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import duckdb
import pandas as pd

from storemon_pipeline.engine.chunks import store_chunks
from storemon_pipeline.engine.db import owns_table, run_script, sql
from storemon_pipeline.engine.files import atomic_target
from storemon_pipeline.engine.instants import as_naive_utc
from storemon_pipeline.engine.windows import (
    build_business_windows,
    fill_business_windows,
    keep_business_windows,
    prepare_zone_offsets,
    read_stored_windows,
    scope_window_stores,
)

REPORT_COLUMNS = [
    "store_id",
    "uptime_last_hour",
    "uptime_last_day",
    "uptime_last_week",
    "downtime_last_hour",
    "downtime_last_day",
    "downtime_last_week",
]
MINUTE_US = 60_000_000
HOUR_US = 3_600_000_000
WEEK = timedelta(days=7)
# Polls this far before a report's week are read with it. A store polled in hours in the day
# before its week, or in its first day, never needs the search further back (the span of any
# older poll ends before the week).
LOOKBACK_MARGIN = timedelta(days=1)
# The search before the look-back reads these chunks, then all that is older at once: most
# stores that need it (closed for two days) are done within the first.
SEARCH_CHUNKS = (timedelta(days=2), timedelta(days=8))


def kept_history(retention_days: int) -> timedelta:
    """What retention keeps before the latest poll: the days asked for, and the look-back a
    report as of the oldest of them needs."""
    return timedelta(days=retention_days) + WEEK + LOOKBACK_MARGIN


class NoPollsError(LookupError):
    """There is nothing to report on: no poll at or before the as-of instant."""


def latest_poll(con: duckdb.DuckDBPyConnection) -> datetime | None:
    return con.execute("SELECT max(last_poll) FROM stores").fetchone()[0]


def resolve_as_of(con: duckdb.DuckDBPyConnection, as_of: datetime | None) -> datetime:
    if as_of is None:
        as_of = latest_poll(con)
        if as_of is None:
            raise NoPollsError("no polls are loaded yet: ingest a store-status file first")
    return as_naive_utc(as_of)


def report_horizon(first_as_of: datetime) -> datetime:
    """The earliest poll a batch of reports reads without searching: its first week, less the
    margin."""
    return first_as_of - WEEK - LOOKBACK_MARGIN


def compute_reports(
    con: duckdb.DuckDBPyConnection,
    as_ofs: Sequence[datetime],
    store_ids: Sequence[str] | None = None,
    *,
    polls_per_chunk: int | None = None,
) -> list[datetime]:
    """Fill the temp table ``report_results`` (as_of, store_key, store_id, uptime and business
    microseconds per period) for every instant of ``as_ofs``; returns the instants, sorted.
    See ``report_chunks``."""
    for _ in report_chunks(con, as_ofs, store_ids, polls_per_chunk=polls_per_chunk):
        pass
    return report_instants(as_ofs)


def keep_latest_windows(con: duckdb.DuckDBPyConnection) -> bool:
    """The table business_windows ready for the report as of the latest poll (what the
    business_windows asset keeps): built again when it no longer covers that report's span.
    Returns whether it was built again."""
    latest = latest_poll(con)
    if latest is None:
        return False
    horizon = report_horizon(latest)
    if not owns_table(con, "business_windows_span"):
        # a view over the shards: each shard's reports store their own windows; the asset's
        # table is filled for it to show, and kept nowhere
        fill_business_windows(con, horizon, latest)
        return True
    if keep_business_windows(con, horizon, latest, rebuild=False) is not None:
        return False  # they cover it already
    return keep_business_windows(con, horizon, latest, rebuild=True) is not None


def report_instants(as_ofs: Sequence[datetime]) -> list[datetime]:
    """The distinct instants of a batch, sorted (naive UTC)."""
    instants = sorted({as_naive_utc(a) for a in as_ofs})
    if not instants:
        raise ValueError("no as-of instant to report")
    return instants


def report_chunks(
    con: duckdb.DuckDBPyConnection,
    as_ofs: Sequence[datetime],
    store_ids: Sequence[str] | None = None,
    *,
    polls_per_chunk: int | None = None,
) -> Iterator[None]:
    """Compute the reports as of every instant of ``as_ofs`` one chunk of stores after another,
    adding each chunk's rows to the temp table ``report_results`` and yielding: a caller that
    takes a chunk's rows away (to a file) may empty the table before the next, so that a batch
    of any size holds one chunk's rows at a time.

    ``store_ids`` limits the reports to those stores (a shard) and gives exactly their rows of
    the full reports. The chunks (engine/chunks.py) are sized from the connection's memory
    limit by their polls of the look-back and their rows (a store's row per instant), or hold
    about ``polls_per_chunk`` polls each; a store's rows do not depend on the others', so they
    are the same. Many instants are one pass: each chunk's timelines are built once for all.
    """
    instants = report_instants(as_ofs)
    first, last = instants[0], instants[-1]
    horizon = report_horizon(first)
    con.execute(
        "CREATE OR REPLACE TEMP TABLE report_as_of AS SELECT unnest(?::TIMESTAMP[]) AS as_of",
        [instants],
    )
    scope_report_stores(con, last, store_ids)
    con.execute(sql("report_results_schema"))
    # work over every store may build the stored windows again; a subset only reads them
    stored_through = keep_business_windows(con, horizon, last, rebuild=store_ids is None)
    for key_range in store_chunks(
        con, "report_stores", horizon, last, polls_per_chunk, rows_per_store=len(instants)
    ):
        build_timelines(
            con, horizon, last, first - WEEK, key_range=key_range,
            windows_stored_through=stored_through,
        )
        for step in ("report_readings", "report_values"):
            con.execute(sql(step))
        yield


def scope_report_stores(
    con: duckdb.DuckDBPyConnection, last_as_of: datetime, store_ids: Sequence[str] | None
) -> None:
    """The temp table ``report_stores``: the stores (of ``store_ids``, or all) with a poll at or
    before ``last_as_of`` (docs/semantics.md §2.3), whose timelines ``build_timelines`` builds."""
    con.execute(
        """
        CREATE OR REPLACE TEMP TABLE report_stores AS
        SELECT store_key, store_id, first_poll
        FROM stores
        WHERE first_poll <= $last_as_of
          AND ($store_ids IS NULL OR store_id IN (SELECT unnest($store_ids::VARCHAR[])))
        """,
        {"last_as_of": last_as_of, "store_ids": None if store_ids is None else list(store_ids)},
    )


def build_timelines(
    con: duckdb.DuckDBPyConnection,
    horizon: datetime,
    last_as_of: datetime,
    first_week_start: datetime,
    *,
    key_range: tuple[int, int] | None = None,
    windows_stored_through: int | None = None,
) -> None:
    """The timelines of ``report_timelines.sql`` (first_in_hours, poll_spans, status_runs,
    business_cumulative) for the stores of the temp table ``report_stores``
    and the instants of ``report_as_of``: windows over [horizon, last_as_of], the look-back's
    polls, and the search before it (``_search_before_lookback``). Shared by the reports and
    the SLA periods (engine/sla.py).

    A store with an in-hours poll no later than ``first_week_start + LOOKBACK_MARGIN`` is not
    searched before the horizon, so the timelines are exact where they are read if every
    as-of is at or after that instant and every instant read is at or after
    ``(horizon + first_week_start + LOOKBACK_MARGIN) / 2``. A batch of reports: its first
    week's start W, and the horizon W - LOOKBACK_MARGIN. ``key_range``: the first and last
    store key of ``report_stores`` when the caller knows them (``store_chunks`` yields them).
    ``windows_stored_through``: what ``keep_business_windows`` said of the span: the windows
    of stores up to that key are read from the table business_windows instead of built."""
    scope_window_stores(con, "SELECT store_key, store_id FROM report_stores")
    first_key, last_key = key_range or con.execute(
        "SELECT min(store_key), max(store_key) FROM report_stores"
    ).fetchone()
    if windows_stored_through is not None and last_key <= windows_stored_through:
        read_stored_windows(con, horizon, last_as_of, "report_windows", (first_key, last_key))
    else:
        build_business_windows(con, horizon, last_as_of, "report_windows")
    con.execute(
        sql("report_lookback"),
        {"horizon": horizon, "last_as_of": last_as_of, "first_key": first_key,
         "last_key": last_key},
    )
    _search_before_lookback(con, horizon, first_week_start)
    con.execute(sql("report_timelines"))


def _search_before_lookback(
    con: duckdb.DuckDBPyConnection, horizon: datetime, first_week_start: datetime
) -> None:
    """``prior_polls(store_key, ts, is_active, all_polls)``: the last in-hours poll (not
    all_polls) and the last poll (all_polls) before the horizon of the stores that may need
    them.

    A store needs nothing older if it has an in-hours poll p no later than a margin after the
    first week's start W: whether p is before W or after it, every poll older than the horizon
    H = W - margin is nearer to nothing in the weeks than p is (its midpoint with p lies before
    (H + p) / 2 <= W), and the store uses its in-hours polls for every report of the batch.

    The others (stores open an hour a week, silent stores) are searched back in a few chunks
    (SEARCH_CHUNKS, then the rest), each store down to its first poll, or down to where an
    earlier report's search stopped (``search_memo``): what was found before that instant is
    remembered, so a live feed's reports read only the polls that arrived since. A store leaves
    the search when its in-hours poll is found or its history is exhausted.
    """
    con.execute(
        "CREATE OR REPLACE TEMP TABLE prior_polls (store_key INTEGER, ts TIMESTAMP, "
        "is_active BOOLEAN, all_polls BOOLEAN)"
    )
    con.execute(
        """
        CREATE OR REPLACE TEMP TABLE searched_stores AS
        SELECT
            report_stores.store_key,
            report_stores.store_id,
            coalesce(search_memo.searched_before, report_stores.first_poll) AS search_down_to,
            search_memo.searched_before IS NOT NULL AS remembered
        FROM report_stores
        LEFT JOIN search_memo
            ON search_memo.store_key = report_stores.store_key
            AND search_memo.searched_before <= $horizon
        WHERE report_stores.first_poll < $horizon
          AND report_stores.store_key NOT IN (
              SELECT store_key FROM lookback_polls WHERE in_hours AND ts <= $nearest_enough
          )
        """,
        {"horizon": horizon, "nearest_enough": first_week_start + LOOKBACK_MARGIN},
    )
    searched, oldest = con.execute(
        "SELECT count(*), min(search_down_to) FILTER (WHERE search_down_to < $horizon) "
        "FROM searched_stores",
        {"horizon": horizon},
    ).fetchone()
    if not searched:  # every store has its in-hours poll near enough: nothing to search
        return
    con.execute(
        "CREATE OR REPLACE TEMP TABLE search_stores AS "
        "SELECT * FROM searched_stores WHERE search_down_to < $horizon",
        {"horizon": horizon},
    )
    if oldest is not None:
        prepare_zone_offsets(con, oldest, horizon, stores="search_stores")
    chunk_to = horizon
    for length in (*SEARCH_CHUNKS, None):
        if not con.execute("SELECT count(*) FROM search_stores").fetchone()[0]:
            break
        chunk_from = oldest if length is None else max(chunk_to - length, oldest)
        scope_window_stores(con, "SELECT store_key, store_id FROM search_stores")
        build_business_windows(con, chunk_from, chunk_to, "search_windows", zones_ready=True)
        con.execute(sql("report_search"), {"chunk_from": chunk_from, "chunk_to": chunk_to})
        # the first poll found before the horizon is the last one (all_polls); a store is done
        # when its last in-hours poll is found, or when the chunk reaches down to its first
        # poll or to where an earlier search stopped
        con.execute(
            """
            INSERT INTO prior_polls
            SELECT store_key, last_ts, last_active, true
            FROM search_found
            WHERE store_key NOT IN (SELECT store_key FROM prior_polls WHERE all_polls);
            INSERT INTO prior_polls
            SELECT store_key, last_in_hours_ts, last_in_hours_active, false
            FROM search_found
            WHERE last_in_hours_ts IS NOT NULL
            """
        )
        con.execute(
            """
            DELETE FROM search_stores
            WHERE search_down_to >= $chunk_from
               OR store_key IN (
                   SELECT store_key FROM search_found WHERE last_in_hours_ts IS NOT NULL
               )
            """,
            {"chunk_from": chunk_from},
        )
        chunk_to = chunk_from
    run_script(con, "report_search_recall", {"horizon": horizon})
    if owns_table(con, "search_memo", writing=True):
        run_script(con, "report_search_remember", {"horizon": horizon})


def compute_report(
    con: duckdb.DuckDBPyConnection,
    as_of: datetime | None = None,
    store_ids: Sequence[str] | None = None,
) -> datetime:
    """One report (default: as of the latest poll) into ``report_results``; returns its as-of."""
    as_of = resolve_as_of(con, as_of)
    compute_reports(con, [as_of], store_ids)
    return as_of


def _as_of_in_results(con: duckdb.DuckDBPyConnection, as_of: datetime | None) -> datetime:
    """The as-of to read from ``report_results``: the one given, or the latest computed."""
    if as_of is not None:
        return as_naive_utc(as_of)
    return con.execute("SELECT max(as_of) FROM report_results").fetchone()[0]


def result_frame(con: duckdb.DuckDBPyConnection, as_of: datetime | None = None) -> pd.DataFrame:
    """One report of ``report_results`` with unrounded values (minutes for the hour, hours for
    day and week), sorted by store_id."""
    micros = con.execute(
        "SELECT * FROM report_results WHERE as_of = ? ORDER BY store_id",
        [_as_of_in_results(con, as_of)],
    ).df()
    frame = pd.DataFrame({"store_id": micros["store_id"].astype(str)})
    for period, unit in (("hour", MINUTE_US), ("day", HOUR_US), ("week", HOUR_US)):
        uptime = micros[f"uptime_{period}_us"]
        business = micros[f"business_{period}_us"]
        frame[f"uptime_last_{period}"] = uptime / unit
        frame[f"downtime_last_{period}"] = (business - uptime) / unit
    return frame[REPORT_COLUMNS]


def report_frame(
    con: duckdb.DuckDBPyConnection,
    as_of: datetime | None = None,
    store_ids: Sequence[str] | None = None,
) -> pd.DataFrame:
    """The report with unrounded values (minutes for the hour, hours for day and week)."""
    return result_frame(con, compute_report(con, as_of, store_ids))


@dataclass(frozen=True)
class ReportSummary:
    stores: int
    stores_with_downtime_last_week: int
    uptime_share_last_week: float | None  # of all business time; None without business time


def result_summary(
    con: duckdb.DuckDBPyConnection, as_of: datetime | None = None
) -> ReportSummary:
    stores, with_downtime, share = con.execute(
        "SELECT count(*), count(*) FILTER (WHERE business_week_us > uptime_week_us), "
        "sum(uptime_week_us) / nullif(sum(business_week_us), 0) FROM report_results "
        "WHERE as_of = ?",
        [_as_of_in_results(con, as_of)],
    ).fetchone()
    return ReportSummary(stores, with_downtime, None if share is None else float(share))


def most_downtime(
    con: duckdb.DuckDBPyConnection, as_of: datetime | None = None, limit: int = 10
) -> pd.DataFrame:
    """The stores of a report with the most downtime last week (rounded, for people)."""
    return con.execute(
        """
        SELECT store_id,
               round((business_week_us - uptime_week_us) / 3.6e9, 2) AS "downtime last week (h)",
               round(uptime_week_us / 3.6e9, 2) AS "uptime last week (h)",
               round((business_day_us - uptime_day_us) / 3.6e9, 2) AS "downtime last day (h)",
               round((business_hour_us - uptime_hour_us) / 6e7, 2) AS "downtime last hour (min)"
        FROM report_results
        WHERE as_of = ? AND business_week_us > uptime_week_us
        ORDER BY business_week_us - uptime_week_us DESC, store_id
        LIMIT ?
        """,
        [_as_of_in_results(con, as_of), limit],
    ).df()


@dataclass(frozen=True)
class FinishedReport:
    """What a report run did: the history rows it wrote and its CSV's report."""

    rows: int  # written to the history
    as_of: datetime  # of the CSV: the newest partition's
    summary: ReportSummary
    most_downtime: pd.DataFrame
    latest_poll: datetime | None
    data_version: str


@dataclass(frozen=True)
class WrittenReport:
    path: Path
    as_of: datetime
    stores: int


def export_report_csv(
    con: duckdb.DuckDBPyConnection, out_path: Path | str, as_of: datetime | None = None
) -> Path:
    """One report of ``report_results`` as the CSV of docs/semantics.md §2.10: exact header, one
    row per store sorted by store_id, 2 decimals."""
    out_path = Path(out_path)
    query = sql("report_csv").replace("$as_of", f"'{_as_of_in_results(con, as_of)}'::TIMESTAMP")
    with atomic_target(out_path) as temporary:
        con.execute(f"COPY ({query}) TO '{temporary}' (HEADER, DELIMITER ',')")
    return out_path


def write_report_csv(
    con: duckdb.DuckDBPyConnection,
    out_path: Path | str,
    as_of: datetime | None = None,
    store_ids: Sequence[str] | None = None,
) -> WrittenReport:
    """Compute the report and write its CSV."""
    as_of = compute_report(con, as_of, store_ids)
    path = export_report_csv(con, out_path, as_of)
    return WrittenReport(path, as_of, result_summary(con, as_of).stores)
