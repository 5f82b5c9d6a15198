"""Invariants of stored reports (docs/semantics.md, "Values"), recomputed from the source tables.

Each function checks the rows of ``uptime_report`` (one slice per partition hour) against the
feed tables without going through the report query, for a list of partition hours at once, and
returns one row of figures per partition hour (plus, where useful, a sample of failing stores).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import duckdb
import pandas as pd

REPORT_TABLE = "uptime_report"
# (period, its length as SQL, the unit of its stored values in microseconds, length in units)
PERIODS = (
    ("hour", "INTERVAL 1 HOUR", 60_000_000, 60.0),
    ("day", "INTERVAL 1 DAY", 3_600_000_000, 24.0),
    ("week", "INTERVAL 7 DAY", 3_600_000_000, 168.0),
)
SAMPLE_SIZE = 10


def report_table_exists(con: duckdb.DuckDBPyConnection) -> bool:
    return bool(
        con.execute(
            "SELECT count(*) FROM information_schema.tables "
            "WHERE table_schema = 'main' AND table_name = ?",
            [REPORT_TABLE],
        ).fetchone()[0]
    )


def _register_hours(con: duckdb.DuckDBPyConnection, partition_hours: Sequence[datetime]) -> None:
    con.execute(
        "CREATE OR REPLACE TEMP TABLE checked_hours AS "
        "SELECT DISTINCT unnest(?::TIMESTAMP[]) AS partition_hour",
        [list(partition_hours)],
    )


def stored_partitions(
    con: duckdb.DuckDBPyConnection, partition_hours: Sequence[datetime]
) -> pd.DataFrame:
    """partition_hour, as_of (None without rows), rows: what is stored for each hour asked."""
    _register_hours(con, partition_hours)
    if not report_table_exists(con):
        return con.execute(
            "SELECT partition_hour, NULL::TIMESTAMP AS as_of, 0 AS rows FROM checked_hours"
        ).df()
    return con.execute(
        f"""
        SELECT checked_hours.partition_hour, max(report.as_of) AS as_of, count(report.as_of) AS rows
        FROM checked_hours
        LEFT JOIN {REPORT_TABLE} AS report USING (partition_hour)
        GROUP BY ALL ORDER BY partition_hour
        """
    ).df()


def business_time_gaps(
    con: duckdb.DuckDBPyConnection, partition_hours: Sequence[datetime], tolerance_seconds: float
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Before rounding, uptime + downtime must be the business time of each period; business
    time is summed here straight from ``business_windows``.

    Returns (per partition hour: stores_checked, stores_failing, largest_gap_seconds) and the
    worst failing stores of each partition hour.
    """
    _register_hours(con, partition_hours)
    sums = ",\n".join(
        f"sum(greatest(0, date_diff('microsecond', greatest(w.window_start, r.as_of - {length}), "
        f"least(w.window_end, r.as_of)))) AS business_{period}_us"
        for period, length, _, _ in PERIODS
    )
    gaps = ", ".join(
        f"abs((r.uptime_last_{period} + r.downtime_last_{period}) * {unit} "
        f"- coalesce(b.business_{period}_us, 0))"
        for period, _, unit, _ in PERIODS
    )
    con.execute(
        f"""
        CREATE OR REPLACE TEMP TABLE business_gaps AS
        WITH report AS (
            SELECT * FROM {REPORT_TABLE} SEMI JOIN checked_hours USING (partition_hour)
        ),
        business AS (
            SELECT r.partition_hour, r.store_id, {sums}
            FROM report AS r
            JOIN stores USING (store_id)
            JOIN business_windows AS w USING (store_key)
            WHERE w.window_start < r.as_of AND w.window_end > r.as_of - INTERVAL 7 DAY
            GROUP BY r.partition_hour, r.store_id
        )
        SELECT r.partition_hour, r.store_id, greatest({gaps}) / 1e6 AS worst_gap_seconds
        FROM report AS r
        LEFT JOIN business AS b USING (partition_hour, store_id)
        """
    )
    summary = con.execute(
        """
        SELECT partition_hour,
               count(*) AS stores_checked,
               count(*) FILTER (WHERE worst_gap_seconds > $tolerance) AS stores_failing,
               coalesce(max(worst_gap_seconds), 0) AS largest_gap_seconds
        FROM business_gaps GROUP BY ALL ORDER BY partition_hour
        """,
        {"tolerance": tolerance_seconds},
    ).df()
    failing = con.execute(
        """
        SELECT partition_hour, store_id, round(worst_gap_seconds, 3) AS worst_gap_seconds
        FROM business_gaps
        WHERE worst_gap_seconds > $tolerance
        QUALIFY row_number() OVER (
            PARTITION BY partition_hour ORDER BY worst_gap_seconds DESC, store_id
        ) <= $sample
        ORDER BY partition_hour, worst_gap_seconds DESC, store_id
        """,
        {"tolerance": tolerance_seconds, "sample": SAMPLE_SIZE},
    ).df()
    return summary, failing


def values_out_of_period(
    con: duckdb.DuckDBPyConnection, partition_hours: Sequence[datetime]
) -> pd.DataFrame:
    """Rows with an uptime or downtime outside [0, the period's length] (60 min, 24 h, 168 h)."""
    _register_hours(con, partition_hours)
    out_of_range = " OR ".join(
        f"NOT ({kind}_last_{period} BETWEEN -1e-9 AND {length} + 1e-9)"
        for period, _, _, length in PERIODS
        for kind in ("uptime", "downtime")
    )
    return con.execute(
        f"""
        SELECT * EXCLUDE (as_of)
        FROM {REPORT_TABLE} SEMI JOIN checked_hours USING (partition_hour)
        WHERE {out_of_range}
        ORDER BY partition_hour, store_id
        """
    ).df()


@dataclass(frozen=True)
class StoreCoverage:
    partition_hour: datetime
    as_of: datetime
    rows: int
    stores_with_polls: int  # a poll at or before as_of
    missing: list[str]  # with polls, not reported
    extra: list[str]  # reported, without polls
    duplicated: list[str]  # reported more than once


def reported_stores_mismatch(
    con: duckdb.DuckDBPyConnection, as_of_by_hour: dict[datetime, datetime]
) -> list[StoreCoverage]:
    """Per partition hour: are exactly the stores with a poll at or before its as-of reported,
    each once?"""
    con.execute(
        "CREATE OR REPLACE TEMP TABLE checked_as_of AS "
        "SELECT unnest(?::TIMESTAMP[]) AS partition_hour, unnest(?::TIMESTAMP[]) AS as_of",
        [list(as_of_by_hour), list(as_of_by_hour.values())],
    )
    reported = (
        f"SELECT partition_hour, store_id FROM {REPORT_TABLE} "
        "SEMI JOIN checked_as_of USING (partition_hour)"
        if report_table_exists(con)
        else "SELECT NULL::TIMESTAMP AS partition_hour, NULL::VARCHAR AS store_id WHERE false"
    )
    rows = con.execute(
        f"""
        WITH first_polls AS (
            SELECT stores.store_id, min(polls.ts) AS first_poll
            FROM polls JOIN stores USING (store_key)
            GROUP BY ALL
        ),
        expected AS (
            SELECT checked_as_of.partition_hour, first_polls.store_id
            FROM checked_as_of JOIN first_polls ON first_polls.first_poll <= checked_as_of.as_of
        ),
        reported AS ({reported}),
        reported_counts AS (
            SELECT partition_hour, store_id, count(*) AS times FROM reported GROUP BY ALL
        ),
        missing AS (SELECT * FROM expected EXCEPT SELECT partition_hour, store_id FROM reported),
        extra AS (SELECT partition_hour, store_id FROM reported EXCEPT SELECT * FROM expected)
        SELECT
            checked_as_of.partition_hour,
            checked_as_of.as_of,
            (SELECT coalesce(sum(times), 0) FROM reported_counts AS r
             WHERE r.partition_hour = checked_as_of.partition_hour) AS rows,
            (SELECT count(*) FROM expected AS e
             WHERE e.partition_hour = checked_as_of.partition_hour) AS stores_with_polls,
            (SELECT coalesce(list(store_id ORDER BY store_id), []) FROM missing AS m
             WHERE m.partition_hour = checked_as_of.partition_hour) AS missing,
            (SELECT coalesce(list(store_id ORDER BY store_id), []) FROM extra AS x
             WHERE x.partition_hour = checked_as_of.partition_hour) AS extra,
            (SELECT coalesce(list(store_id ORDER BY store_id), []) FROM reported_counts AS d
             WHERE d.partition_hour = checked_as_of.partition_hour AND d.times > 1) AS duplicated
        FROM checked_as_of
        ORDER BY checked_as_of.partition_hour
        """
    ).fetchall()
    return [StoreCoverage(*row) for row in rows]


@dataclass(frozen=True)
class Freshness:
    partition_hour: datetime
    as_of: datetime
    newest_poll: datetime | None  # at or before as_of
    stale_stores: int  # no poll within the limit before as_of
    stores: int  # with a poll at or before as_of


def poll_freshness(
    con: duckdb.DuckDBPyConnection, as_of_by_hour: dict[datetime, datetime], limit: timedelta
) -> list[Freshness]:
    """Per partition hour: the newest poll at or before its as-of, and how many stores have no
    poll within ``limit`` before the as-of (among stores with a poll before it)."""
    con.execute(
        "CREATE OR REPLACE TEMP TABLE checked_as_of AS "
        "SELECT unnest(?::TIMESTAMP[]) AS partition_hour, unnest(?::TIMESTAMP[]) AS as_of",
        [list(as_of_by_hour), list(as_of_by_hour.values())],
    )
    rows = con.execute(
        """
        WITH last_polls AS (
            SELECT checked_as_of.partition_hour, polls.store_key, max(polls.ts) AS last_poll
            FROM checked_as_of JOIN polls ON polls.ts <= checked_as_of.as_of
            GROUP BY ALL
        )
        SELECT
            checked_as_of.partition_hour,
            checked_as_of.as_of,
            max(last_polls.last_poll) AS newest_poll,
            count(last_polls.store_key)
                FILTER (WHERE last_polls.last_poll < checked_as_of.as_of - $limit) AS stale_stores,
            count(last_polls.store_key) AS stores
        FROM checked_as_of
        LEFT JOIN last_polls USING (partition_hour)
        GROUP BY ALL
        ORDER BY checked_as_of.partition_hour
        """,
        {"limit": limit},
    ).fetchall()
    return [Freshness(*row) for row in rows]
