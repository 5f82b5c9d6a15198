"""Asset checks on each report partition: SPEC §2's invariants, recomputed in DuckDB.

They read the partition's stored rows (table ``uptime_report``) and check them against the
source tables, independently of the report query. (The ingest checks are computed by the ingest
multi-asset itself, from what it just loaded: see assets.py.)
"""


import warnings
from datetime import datetime, timedelta

import dagster as dg
import duckdb
import pandas as pd

from storemon_pipeline.defs.assets import (
    DUCKDB_POOL,
    markdown_table,
    uptime_report,
)
from storemon_pipeline.defs.partitions import partition_as_of, partition_window, report_partitions
from storemon_pipeline.defs.resources import StoremonState
from storemon_pipeline.engine.report import latest_poll

# Partitioned asset checks are a preview feature of Dagster 1.13 (pinned below 1.14). They give
# each report partition its own check results, which is what browsing the history needs.
warnings.filterwarnings("ignore", category=dg.PreviewWarning, message=".*partitions_def.*")

REPORT_TABLE = "main.uptime_report"
TOLERANCE_US = 1_000_000  # a second
# (period, its length as an interval, the unit of its values in microseconds, length in units)
PERIODS = (
    ("hour", "INTERVAL 1 HOUR", 60_000_000, 60.0),
    ("day", "INTERVAL 1 DAY", 3_600_000_000, 24.0),
    ("week", "INTERVAL 7 DAY", 3_600_000_000, 168.0),
)


def _partition_rows(
    con: duckdb.DuckDBPyConnection, partition: str
) -> tuple[datetime | None, int]:
    """The as-of stored with a partition's rows, and how many rows it has (0 if none)."""
    exists = con.execute(
        "SELECT count(*) FROM information_schema.tables "
        "WHERE table_schema = 'main' AND table_name = 'uptime_report'"
    ).fetchone()[0]
    if not exists:
        return None, 0
    start, _ = partition_window(partition)
    as_of, rows = con.execute(
        f"SELECT max(as_of), count(*) FROM {REPORT_TABLE} WHERE partition_hour = ?", [start]
    ).fetchone()
    return as_of, rows


def _as_of(con: duckdb.DuckDBPyConnection, partition: str) -> tuple[datetime, int]:
    as_of, rows = _partition_rows(con, partition)
    return as_of or partition_as_of(partition, latest_poll(con)), rows


CHECK_KWARGS = dict(
    asset=uptime_report,
    partitions_def=report_partitions,
    pool=DUCKDB_POOL,
)


@dg.asset_check(**CHECK_KWARGS)
def uptime_plus_downtime_is_business_time(
    context: dg.AssetCheckExecutionContext, storemon: StoremonState
) -> dg.AssetCheckResult:
    """Before rounding, uptime + downtime = the store's business time in the period, for every
    store and period, to a second; business time recomputed from the business windows."""
    partition = context.partition_key
    with storemon.connect() as con:
        as_of, rows = _as_of(con, partition)
        if rows == 0:
            return _no_rows(partition)
        start, _ = partition_window(partition)
        sums = ",\n".join(
            f"sum(greatest(0, date_diff('microsecond', greatest(w.window_start, r.as_of - {iv}), "
            f"least(w.window_end, r.as_of)))) AS business_{p}_us"
            for p, iv, _, _ in PERIODS
        )
        gaps = ", ".join(
            f"abs((r.uptime_last_{p} + r.downtime_last_{p}) * {unit} "
            f"- coalesce(b.business_{p}_us, 0))"
            for p, _, unit, _ in PERIODS
        )
        con.execute(
            f"""
            CREATE OR REPLACE TEMP TABLE business_gaps AS
            WITH report AS (SELECT * FROM {REPORT_TABLE} WHERE partition_hour = $start),
            business AS (
                SELECT r.store_id, {sums}
                FROM report r
                JOIN stores USING (store_id)
                JOIN business_windows w USING (store_key)
                WHERE w.window_start < r.as_of AND w.window_end > r.as_of - INTERVAL 7 DAY
                GROUP BY r.store_id
            )
            SELECT r.store_id, greatest({gaps}) / 1e6 AS worst_gap_seconds
            FROM report r LEFT JOIN business b USING (store_id)
            """,
            {"start": start},
        )
        checked, failing, worst = con.execute(
            "SELECT count(*), count(*) FILTER (WHERE worst_gap_seconds > $tolerance), "
            "coalesce(max(worst_gap_seconds), 0) FROM business_gaps",
            {"tolerance": TOLERANCE_US / 1e6},
        ).fetchone()
        bad = con.execute(
            "SELECT store_id, round(worst_gap_seconds, 3) AS worst_gap_seconds "
            "FROM business_gaps WHERE worst_gap_seconds > $tolerance "
            "ORDER BY worst_gap_seconds DESC, store_id LIMIT 10",
            {"tolerance": TOLERANCE_US / 1e6},
        ).df()
    return dg.AssetCheckResult(
        passed=failing == 0,
        description=(
            f"{failing} of {checked} stores: uptime + downtime differs from business time "
            f"by more than a second (worst {worst:.3f} s)"
            if failing
            else f"all {checked} stores add up (largest gap {worst:.6f} s)"
        ),
        metadata={
            "as_of": str(as_of),
            "stores_checked": checked,
            "stores_failing": failing,
            "largest_gap_seconds": float(worst),
            "failing_stores": dg.MetadataValue.md(markdown_table(bad)),
        },
    )


@dg.asset_check(**CHECK_KWARGS)
def values_within_period(
    context: dg.AssetCheckExecutionContext, storemon: StoremonState
) -> dg.AssetCheckResult:
    """Every uptime and downtime lies in [0, the period's length]: 60 min, 24 h, 168 h."""
    partition = context.partition_key
    with storemon.connect() as con:
        _, rows = _as_of(con, partition)
        if rows == 0:
            return _no_rows(partition)
        start, _ = partition_window(partition)
        out_of_range = " OR ".join(
            f"NOT ({kind}_last_{p} BETWEEN -1e-9 AND {length} + 1e-9)"
            for p, _, _, length in PERIODS
            for kind in ("uptime", "downtime")
        )
        bad = con.execute(
            f"SELECT * EXCLUDE (partition_hour, as_of) FROM {REPORT_TABLE} "
            f"WHERE partition_hour = ? AND ({out_of_range}) ORDER BY store_id",
            [start],
        ).df()
    return dg.AssetCheckResult(
        passed=bad.empty,
        description=(
            f"{len(bad)} of {rows} stores have a value outside [0, period] "
            "(hour: 0-60 min, day: 0-24 h, week: 0-168 h)"
            if len(bad)
            else f"all values of {rows} stores within [0, period]"
        ),
        metadata={
            "stores_checked": rows,
            "stores_failing": len(bad),
            "failing_stores": dg.MetadataValue.md(markdown_table(bad.head(10).round(4))),
        },
    )


@dg.asset_check(**CHECK_KWARGS)
def one_row_per_store_with_polls(
    context: dg.AssetCheckExecutionContext, storemon: StoremonState
) -> dg.AssetCheckResult:
    """Exactly the stores with a poll at or before the as-of, each exactly once."""
    partition = context.partition_key
    start, _ = partition_window(partition)
    with storemon.connect() as con:
        as_of, rows = _as_of(con, partition)
        has_rows = rows > 0
        expected = con.execute(
            "SELECT DISTINCT store_id FROM polls JOIN stores USING (store_key) WHERE ts <= ?",
            [as_of],
        ).df()
        reported = (
            con.execute(
                f"SELECT store_id FROM {REPORT_TABLE} WHERE partition_hour = ?", [start]
            ).df()
            if has_rows
            else pd.DataFrame({"store_id": pd.Series([], dtype=str)})
        )
    counts = reported["store_id"].value_counts()
    duplicated = sorted(counts[counts > 1].index)
    missing = sorted(set(expected["store_id"]) - set(reported["store_id"]))
    extra = sorted(set(reported["store_id"]) - set(expected["store_id"]))
    problems = [
        f"{len(missing)} store(s) with polls missing, e.g. {missing[:3]}" if missing else "",
        f"{len(extra)} store(s) without polls reported, e.g. {extra[:3]}" if extra else "",
        f"{len(duplicated)} store(s) reported more than once, e.g. {duplicated[:3]}"
        if duplicated
        else "",
    ]
    problems = [p for p in problems if p]
    return dg.AssetCheckResult(
        passed=not problems,
        description="; ".join(problems) or f"{len(reported)} rows, one per store with polls",
        metadata={
            "as_of": str(as_of),
            "rows": len(reported),
            "stores_with_polls": len(expected),
            "missing": len(missing),
            "extra": len(extra),
            "duplicated": len(duplicated),
        },
    )


@dg.asset_check(**CHECK_KWARGS)
def polls_fresh(
    context: dg.AssetCheckExecutionContext, storemon: StoremonState
) -> dg.AssetCheckResult:
    """Warns when the newest poll the report could use is older than the freshness limit,
    measured from the end of the partition's hour: the report then describes an older instant
    than the hour it stands for (a feed has stopped, or the data is historical)."""
    partition = context.partition_key
    limit = timedelta(hours=storemon.freshness_limit_hours)
    _, end = partition_window(partition)
    with storemon.connect() as con:
        as_of, _ = _as_of(con, partition)
        newest, stale_stores, stores = con.execute(
            """
            WITH last_polls AS (
                SELECT store_key, max(ts) AS last_poll FROM polls WHERE ts <= $as_of GROUP BY 1
            )
            SELECT max(last_poll), count(*) FILTER (WHERE last_poll < $as_of - $limit), count(*)
            FROM last_polls
            """,
            {"as_of": as_of, "limit": limit},
        ).fetchone()
    age = None if newest is None else end - newest
    passed = age is not None and age <= limit
    hours = "n/a" if age is None else f"{age.total_seconds() / 3600:.2f} h"
    return dg.AssetCheckResult(
        passed=passed,
        severity=dg.AssetCheckSeverity.WARN,
        description=(
            f"newest poll is {hours} before the end of partition {partition} "
            f"(limit {storemon.freshness_limit_hours:g} h)"
        ),
        metadata={
            "as_of": str(as_of),
            "newest_poll": str(newest),
            "age_hours": float("nan") if age is None else round(age.total_seconds() / 3600, 3),
            "limit_hours": storemon.freshness_limit_hours,
            "stores_without_a_poll_within_limit_of_as_of": stale_stores or 0,
            "stores": stores or 0,
        },
    )


def _no_rows(partition: str) -> dg.AssetCheckResult:
    """Nothing to check; whether rows are missing is one_row_per_store_with_polls's question."""
    return dg.AssetCheckResult(
        passed=True, description=f"partition {partition} has no rows in {REPORT_TABLE}"
    )


report_checks = [
    uptime_plus_downtime_is_business_time,
    values_within_period,
    one_row_per_store_with_polls,
    polls_fresh,
]
