"""Asset checks on each report partition: the invariants of docs/semantics.md, recomputed by the
engine (``engine/checks.py``) from the source tables, independently of the report query.

(The ingest checks are computed by the ingest multi-asset itself, from what it just loaded: see
assets.py.)
"""


import warnings
from datetime import timedelta

import dagster as dg

from storemon_pipeline.defs.assets import DUCKDB_POOL, uptime_report
from storemon_pipeline.defs.metadata import markdown
from storemon_pipeline.defs.partitions import partition_as_of, partition_window, report_partitions
from storemon_pipeline.defs.resources import StoremonState
from storemon_pipeline.engine import checks
from storemon_pipeline.engine.report import latest_poll

# Partitioned asset checks are a preview feature of Dagster 1.13 (pinned below 1.14). They give
# each report partition its own check results, which is what browsing the history needs.
warnings.filterwarnings("ignore", category=dg.PreviewWarning, message=".*partitions_def.*")

TOLERANCE_SECONDS = 1.0

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
    hour, _ = partition_window(partition)
    with storemon.connect() as con:
        stored = checks.stored_partitions(con, [hour]).iloc[0]
        if stored.rows == 0:
            return _no_rows(partition)
        summary, failing = checks.business_time_gaps(con, [hour], TOLERANCE_SECONDS)
    figures = summary.iloc[0]
    failing_count, checked = int(figures.stores_failing), int(figures.stores_checked)
    worst = float(figures.largest_gap_seconds)
    return dg.AssetCheckResult(
        passed=failing_count == 0,
        description=(
            f"{failing_count} of {checked} stores: uptime + downtime differs from business time "
            f"by more than a second (worst {worst:.3f} s)"
            if failing_count
            else f"all {checked} stores add up (largest gap {worst:.6f} s)"
        ),
        metadata={
            "as_of": str(stored.as_of),
            "stores_checked": checked,
            "stores_failing": failing_count,
            "largest_gap_seconds": worst,
            "failing_stores": markdown(failing.drop(columns="partition_hour")),
        },
    )


@dg.asset_check(**CHECK_KWARGS)
def values_within_period(
    context: dg.AssetCheckExecutionContext, storemon: StoremonState
) -> dg.AssetCheckResult:
    """Every uptime and downtime lies in [0, the period's length]: 60 min, 24 h, 168 h."""
    partition = context.partition_key
    hour, _ = partition_window(partition)
    with storemon.connect() as con:
        rows = int(checks.stored_partitions(con, [hour]).iloc[0].rows)
        if rows == 0:
            return _no_rows(partition)
        bad = checks.values_out_of_period(con, [hour]).drop(columns="partition_hour")
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
            "failing_stores": markdown(bad.head(10).round(4)),
        },
    )


@dg.asset_check(**CHECK_KWARGS)
def one_row_per_store_with_polls(
    context: dg.AssetCheckExecutionContext, storemon: StoremonState
) -> dg.AssetCheckResult:
    """Exactly the stores with a poll at or before the as-of, each exactly once."""
    partition = context.partition_key
    hour, _ = partition_window(partition)
    with storemon.connect() as con:
        stored = checks.stored_partitions(con, [hour]).iloc[0]
        as_of = stored.as_of if stored.rows else partition_as_of(partition, latest_poll(con))
        figures = checks.reported_stores_mismatch(con, {hour: as_of})[0]
    missing, extra, duplicated = figures.missing, figures.extra, figures.duplicated
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
        description="; ".join(problems) or f"{figures.rows} rows, one per store with polls",
        metadata={
            "as_of": str(as_of),
            "rows": figures.rows,
            "stores_with_polls": figures.stores_with_polls,
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
    hour, end = partition_window(partition)
    with storemon.connect() as con:
        stored = checks.stored_partitions(con, [hour]).iloc[0]
        as_of = stored.as_of if stored.rows else partition_as_of(partition, latest_poll(con))
        figures = checks.poll_freshness(con, {hour: as_of}, limit)[0]
    newest = figures.newest_poll
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
            "stores_without_a_poll_within_limit_of_as_of": figures.stale_stores,
            "stores": figures.stores,
        },
    )


def _no_rows(partition: str) -> dg.AssetCheckResult:
    """Nothing to check; whether rows are missing is one_row_per_store_with_polls's question."""
    return dg.AssetCheckResult(
        passed=True, description=f"partition {partition} has no rows in {checks.REPORT_TABLE}"
    )


report_checks = [
    uptime_plus_downtime_is_business_time,
    values_within_period,
    one_row_per_store_with_polls,
    polls_fresh,
]
