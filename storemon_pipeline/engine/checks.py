"""Invariants of the report history (docs/semantics.md §4), recomputed from the source tables.

Each function checks the stored rows of a list of report partitions at once against the feed
tables, without going through the report query, and returns figures per partition hour. The
history file must be attached as ``history`` (``history.attach_history``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import duckdb
import pandas as pd

from storemon_pipeline.engine.windows import build_business_windows, scope_window_stores

# (period, its length as SQL, its length in microseconds)
PERIODS = (
    ("hour", "INTERVAL 1 HOUR", 3_600_000_000),
    ("day", "INTERVAL 1 DAY", 86_400_000_000),
    ("week", "INTERVAL 7 DAY", 604_800_000_000),
)
SAMPLE_SIZE = 10


@dataclass(frozen=True)
class StoredPartition:
    partition_hour: datetime
    as_of: datetime | None  # None: nothing stored for this hour
    rows: int


def stored_partitions(
    con: duckdb.DuckDBPyConnection, partition_hours: Sequence[datetime]
) -> dict[datetime, StoredPartition]:
    _register_hours(con, partition_hours)
    found = con.execute(
        """
        SELECT checked_hours.partition_hour, max(report.as_of), count(report.as_of)
        FROM checked_hours
        LEFT JOIN history.uptime_report AS report USING (partition_hour)
        GROUP BY ALL
        """
    ).fetchall()
    return {row[0]: StoredPartition(*row) for row in found}


def _register_hours(con: duckdb.DuckDBPyConnection, partition_hours: Sequence[datetime]) -> None:
    con.execute(
        "CREATE OR REPLACE TEMP TABLE checked_hours AS "
        "SELECT DISTINCT unnest(?::TIMESTAMP[]) AS partition_hour",
        [list(partition_hours)],
    )


def _register_as_of(
    con: duckdb.DuckDBPyConnection, as_of_by_hour: dict[datetime, datetime]
) -> None:
    con.execute(
        "CREATE OR REPLACE TEMP TABLE checked_as_of AS "
        "SELECT unnest(?::TIMESTAMP[]) AS partition_hour, unnest(?::TIMESTAMP[]) AS as_of",
        [list(as_of_by_hour), list(as_of_by_hour.values())],
    )


@dataclass(frozen=True)
class Finding:
    """One check's result for one partition hour."""

    checked: int  # rows looked at
    failing: int
    worst: float = 0.0  # the largest error, in the check's unit
    sample: pd.DataFrame = field(default_factory=pd.DataFrame)  # a few failing rows


def _findings(
    summary: list[tuple], failing_rows: pd.DataFrame, hours: Sequence[datetime]
) -> dict[datetime, Finding]:
    by_hour = {row[0]: row[1:] for row in summary}
    return {
        hour: Finding(
            *by_hour.get(hour, (0, 0, 0.0)),
            failing_rows[failing_rows["partition_hour"] == hour]
            .drop(columns="partition_hour")
            .reset_index(drop=True),
        )
        for hour in hours
    }


def business_time_gaps(
    con: duckdb.DuckDBPyConnection, partition_hours: Sequence[datetime], tolerance_seconds: float
) -> dict[datetime, Finding]:
    """Before rounding, uptime + downtime must be the business time of each period (the history
    keeps uptime and business time, downtime is their difference): business time is summed here
    from windows built for these partitions, by a plain overlap join. ``worst`` in seconds."""
    stored = stored_partitions(con, partition_hours)
    as_ofs = [p.as_of for p in stored.values() if p.as_of is not None]
    if not as_ofs:
        return _findings([], pd.DataFrame({"partition_hour": []}), partition_hours)
    scope_window_stores(
        con,
        "SELECT DISTINCT stores.store_key, stores.store_id FROM history.uptime_report "
        "JOIN stores USING (store_id) SEMI JOIN checked_hours USING (partition_hour)",
    )
    build_business_windows(con, min(as_ofs) - timedelta(days=7), max(as_ofs), "checked_windows")
    sums = ",\n".join(
        f"sum(greatest(0, date_diff('microsecond', greatest(w.window_start, r.as_of - {length}), "
        f"least(w.window_end, r.as_of)))) AS business_{period}_us"
        for period, length, _ in PERIODS
    )
    gaps = ", ".join(
        f"abs(r.business_{period}_us - coalesce(b.business_{period}_us, 0))"
        for period, _, _ in PERIODS
    )
    con.execute(
        f"""
        CREATE OR REPLACE TEMP TABLE business_gaps AS
        WITH report AS (
            SELECT * FROM history.uptime_report SEMI JOIN checked_hours USING (partition_hour)
        ),
        business AS (
            SELECT r.partition_hour, r.store_id, {sums}
            FROM report AS r
            JOIN stores USING (store_id)
            JOIN checked_windows AS w USING (store_key)
            WHERE w.window_start < r.as_of AND w.window_end > r.as_of - INTERVAL 7 DAY
            GROUP BY r.partition_hour, r.store_id
        )
        SELECT r.partition_hour, r.store_id, greatest({gaps}) / 1e6 AS gap_seconds
        FROM report AS r
        LEFT JOIN business AS b USING (partition_hour, store_id)
        """
    )
    summary = con.execute(
        """
        SELECT partition_hour, count(*), count(*) FILTER (WHERE gap_seconds > $tolerance),
               coalesce(max(gap_seconds), 0)
        FROM business_gaps GROUP BY ALL
        """,
        {"tolerance": tolerance_seconds},
    ).fetchall()
    failing = con.execute(
        """
        SELECT partition_hour, store_id, round(gap_seconds, 3) AS gap_seconds
        FROM business_gaps
        WHERE gap_seconds > $tolerance
        QUALIFY row_number() OVER (
            PARTITION BY partition_hour ORDER BY gap_seconds DESC, store_id
        ) <= $sample
        ORDER BY partition_hour, gap_seconds DESC, store_id
        """,
        {"tolerance": tolerance_seconds, "sample": SAMPLE_SIZE},
    ).df()
    return _findings(summary, failing, partition_hours)


def values_out_of_period(
    con: duckdb.DuckDBPyConnection, partition_hours: Sequence[datetime]
) -> dict[datetime, Finding]:
    """Every uptime and downtime lies in [0, the period's length] (60 min, 24 h, 168 h)."""
    _register_hours(con, partition_hours)
    out_of_range = " OR ".join(
        f"NOT (0 <= uptime_{period}_us AND uptime_{period}_us <= business_{period}_us "
        f"AND business_{period}_us <= {length_us})"
        for period, _, length_us in PERIODS
    )
    con.execute(
        f"""
        CREATE OR REPLACE TEMP TABLE values_checked AS
        SELECT *, {out_of_range} AS out_of_range
        FROM history.uptime_report SEMI JOIN checked_hours USING (partition_hour)
        """
    )
    summary = con.execute(
        "SELECT partition_hour, count(*), count(*) FILTER (WHERE out_of_range), 0.0 "
        "FROM values_checked GROUP BY ALL"
    ).fetchall()
    failing = con.execute(
        f"""
        SELECT partition_hour, store_id,
               round(uptime_hour_us / 60e6, 4) AS uptime_last_hour,
               round((business_hour_us - uptime_hour_us) / 60e6, 4) AS downtime_last_hour,
               round(uptime_day_us / 3600e6, 4) AS uptime_last_day,
               round((business_day_us - uptime_day_us) / 3600e6, 4) AS downtime_last_day,
               round(uptime_week_us / 3600e6, 4) AS uptime_last_week,
               round((business_week_us - uptime_week_us) / 3600e6, 4) AS downtime_last_week
        FROM values_checked
        WHERE out_of_range
        QUALIFY row_number() OVER (PARTITION BY partition_hour ORDER BY store_id) <= {SAMPLE_SIZE}
        ORDER BY partition_hour, store_id
        """
    ).df()
    return _findings(summary, failing, partition_hours)


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
) -> dict[datetime, StoreCoverage]:
    """Per partition hour: are exactly the stores with a poll at or before its as-of reported,
    each once? (The first poll of each store is read from the polls, not from the bookkeeping
    the report uses.)"""
    _register_as_of(con, as_of_by_hour)
    rows = con.execute(
        """
        WITH first_polls AS (
            SELECT stores.store_id, min(polls.ts) AS first_poll
            FROM polls JOIN stores USING (store_key)
            GROUP BY ALL
        ),
        expected AS (
            SELECT checked_as_of.partition_hour, first_polls.store_id
            FROM checked_as_of JOIN first_polls ON first_polls.first_poll <= checked_as_of.as_of
        ),
        reported AS (
            SELECT partition_hour, store_id
            FROM history.uptime_report SEMI JOIN checked_as_of USING (partition_hour)
        ),
        reported_counts AS (
            SELECT partition_hour, store_id, count(*) AS times FROM reported GROUP BY ALL
        ),
        missing AS (SELECT * FROM expected EXCEPT SELECT partition_hour, store_id FROM reported),
        extra AS (SELECT partition_hour, store_id FROM reported EXCEPT SELECT * FROM expected),
        per_hour AS (
            SELECT partition_hour, 'rows' AS kind, sum(times)::BIGINT AS n, [] AS ids
            FROM reported_counts GROUP BY ALL
            UNION ALL
            SELECT partition_hour, 'expected', count(*), [] FROM expected GROUP BY ALL
            UNION ALL
            SELECT partition_hour, 'missing', count(*), list(store_id ORDER BY store_id)[:10]
            FROM missing GROUP BY ALL
            UNION ALL
            SELECT partition_hour, 'extra', count(*), list(store_id ORDER BY store_id)[:10]
            FROM extra GROUP BY ALL
            UNION ALL
            SELECT partition_hour, 'duplicated', count(*), list(store_id ORDER BY store_id)[:10]
            FROM reported_counts WHERE times > 1 GROUP BY ALL
        )
        SELECT partition_hour, kind, n, ids FROM per_hour
        """
    ).fetchall()
    figures: dict[datetime, dict[str, tuple[int, list[str]]]] = {h: {} for h in as_of_by_hour}
    for hour, kind, count, ids in rows:
        figures[hour][kind] = (count, ids)
    return {
        hour: StoreCoverage(
            hour,
            as_of,
            found.get("rows", (0, []))[0],
            found.get("expected", (0, []))[0],
            *(found.get(kind, (0, []))[1] for kind in ("missing", "extra", "duplicated")),
        )
        for hour, as_of in as_of_by_hour.items()
        for found in [figures[hour]]
    }


def newest_polls(
    con: duckdb.DuckDBPyConnection, as_of_by_hour: dict[datetime, datetime], horizon: timedelta
) -> dict[datetime, datetime | None]:
    """Per partition hour, the newest poll at or before its as-of, looked for within
    ``horizon`` before it (None: none that recent)."""
    _register_as_of(con, as_of_by_hour)
    rows = con.execute(
        """
        WITH recent_instants AS (
            SELECT DISTINCT ts
            FROM polls
            WHERE ts BETWEEN (SELECT min(as_of) FROM checked_as_of) - $horizon
                         AND (SELECT max(as_of) FROM checked_as_of)
        )
        SELECT checked_as_of.partition_hour,
               CASE WHEN recent_instants.ts >= checked_as_of.as_of - $horizon
                    THEN recent_instants.ts END
        FROM checked_as_of
        ASOF LEFT JOIN recent_instants ON recent_instants.ts <= checked_as_of.as_of
        """,
        {"horizon": horizon},
    ).fetchall()
    return dict(rows)
