"""Asset checks on the report partitions: the invariants of docs/semantics.md §4, recomputed by
the engine (``engine/checks.py``) from the source tables, independently of the report query.

A run may materialize many partitions at once (a backfill is one run): each check then computes
all of them in one pass and records one evaluation per partition, plus one for the run as a
whole. (The ingest checks are computed by the ingest multi-asset itself: see assets.py.)

The three invariants are blocking: a report that breaks one fails its run (Dagster fails the
check's step), and its sidecar is withheld, so the REST API answers Failed with what the check
found and never serves the CSV; the partitions it broke are withheld from the history's readers
until a run computes them again. ``polls_fresh`` only warns: old data is not wrong data.

``month_is_the_sum_of_its_days`` checks the ``monthly_sla`` asset's saved month against its local
days, computed again; it is blocking too.
"""


import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import dagster as dg
import duckdb

from storemon_pipeline.defs.assets import DUCKDB_POOL
from storemon_pipeline.defs.keys import MONTHLY_SLA, REPORT
from storemon_pipeline.defs.metadata import markdown
from storemon_pipeline.defs.partitions import report_partitions, sla_months
from storemon_pipeline.defs.resources import StoremonState
from storemon_pipeline.engine import checks
from storemon_pipeline.engine.history import (
    attach_history,
    partition_as_of,
    partition_hour,
    partition_key,
    withhold_partitions,
)
from storemon_pipeline.engine.report import latest_poll
from storemon_pipeline.engine.sla import (
    compare_with_days,
    compute_sla,
    days_as_seen,
    load_sla,
    month_period,
    saved_month_path,
    sla_micros,
)
from storemon_pipeline.engine.state import withhold_report

# Partitioned asset checks are a preview feature of Dagster 1.13 (pinned below 1.14). They give
# each report partition its own check results, which is what browsing the history needs.
warnings.filterwarnings("ignore", category=dg.PreviewWarning, message=".*partitions_def.*")

TOLERANCE_SECONDS = 1.0

CHECK_KWARGS = dict(
    asset=REPORT,
    partitions_def=report_partitions,
    pool=DUCKDB_POOL,
)
BLOCKING = dict(CHECK_KWARGS, blocking=True)


@dataclass(frozen=True)
class Outcome:
    passed: bool
    description: str
    metadata: dict[str, object] = field(default_factory=dict)


def _evaluate(
    context: dg.AssetCheckExecutionContext,
    storemon: StoremonState,
    check: Callable[[duckdb.DuckDBPyConnection, dict[datetime, datetime | None]], dict],
    severity: dg.AssetCheckSeverity = dg.AssetCheckSeverity.ERROR,
) -> dg.AssetCheckResult:
    """Run ``check`` over the run's partitions (hour -> stored as-of, None if nothing stored)
    and record its outcomes: the result itself for one partition; for many, one evaluation per
    partition and the result for the run."""
    hours = [partition_hour(key) for key in context.partition_keys]
    with storemon.connect() as con:
        # read-only: with the Celery executor the checks of a run evaluate side by side, on
        # workers of their own, and a writer would hold the others off for its whole evaluation
        attach_history(
            con, storemon.history_path, read_only=True, wait_seconds=storemon.lock_wait_seconds
        )
        stored = checks.stored_partitions(con, hours)
        outcomes: dict[datetime, Outcome] = check(
            con, {hour: stored[hour].as_of for hour in hours}
        )
    spec = context.check_specs[0]
    result = _result(context, spec.name, outcomes, severity)
    if not result.passed and spec.blocking and severity == dg.AssetCheckSeverity.ERROR:
        # Dagster fails the step; the report of this run must not be served meanwhile either,
        # nor the partitions it broke shown as history
        withhold_report(
            storemon.reports_dir, context.run.run_id, spec.name, result.description or ""
        )
        withhold_partitions(
            storemon.history_path, [h for h, o in outcomes.items() if not o.passed], spec.name
        )
    return result


def _result(
    context: dg.AssetCheckExecutionContext,
    name: str,
    outcomes: dict[datetime, Outcome],
    severity: dg.AssetCheckSeverity,
) -> dg.AssetCheckResult:
    """The result itself for one partition; for many, each partition's evaluation logged and
    the run's result naming the failing partitions and what the first of them found."""
    if len(outcomes) == 1:
        (outcome,) = outcomes.values()
        return dg.AssetCheckResult(
            passed=outcome.passed,
            severity=severity,
            description=outcome.description,
            metadata=outcome.metadata,
        )
    for hour, outcome in outcomes.items():
        context.op_execution_context.log_event(
            dg.AssetCheckEvaluation(
                asset_key=REPORT,
                check_name=name,
                passed=outcome.passed,
                severity=severity,
                description=outcome.description,
                metadata=outcome.metadata,
                partition=partition_key(hour),
            )
        )
    failing = sorted(partition_key(h) for h, o in outcomes.items() if not o.passed)
    first = outcomes[partition_hour(failing[0])].description if failing else ""
    return dg.AssetCheckResult(
        passed=not failing,
        severity=severity,
        description=f"{len(outcomes)} partitions checked, {len(failing)} failing"
        + (f" ({', '.join(failing[:5])}{', ...' if len(failing) > 5 else ''}; "
           f"{failing[0]}: {first})" if failing else ""),
        metadata={
            "partitions": len(outcomes), "failing_partitions": dg.MetadataValue.json(failing)
        },
    )


def _stored_outcomes(
    as_of_by_hour: dict[datetime, datetime | None],
    findings: dict[datetime, checks.Finding],
    describe: Callable[[datetime, checks.Finding], Outcome],
) -> dict[datetime, Outcome]:
    """Each partition's finding described; a partition without rows has nothing to check
    (whether rows are missing is one_row_per_store_with_polls's question)."""
    return {
        hour: describe(as_of, findings[hour]) if as_of is not None
        else Outcome(True, f"partition {partition_key(hour)} has no rows in the history")
        for hour, as_of in as_of_by_hour.items()
    }


@dg.asset_check(**BLOCKING)
def uptime_plus_downtime_is_business_time(
    context: dg.AssetCheckExecutionContext, storemon: StoremonState
) -> dg.AssetCheckResult:
    """Before rounding, uptime + downtime = the store's business time in the period, for every
    store and period, to a second; business time recomputed from the business hours."""

    def describe(as_of: datetime, found: checks.Finding) -> Outcome:
        return Outcome(
            found.failing == 0,
            f"{found.failing} of {found.checked} stores: uptime + downtime differs from "
            f"business time by more than a second (worst {found.worst:.3f} s)"
            if found.failing
            else f"all {found.checked} stores add up (largest gap {found.worst:.6f} s)",
            {
                "as_of": str(as_of),
                "stores_checked": found.checked,
                "stores_failing": found.failing,
                "largest_gap_seconds": float(found.worst),
                "failing_stores": markdown(found.sample),
            },
        )

    def check(con, as_of_by_hour):
        findings = checks.business_time_gaps(con, list(as_of_by_hour), TOLERANCE_SECONDS)
        return _stored_outcomes(as_of_by_hour, findings, describe)

    return _evaluate(context, storemon, check)


@dg.asset_check(**BLOCKING)
def values_within_period(
    context: dg.AssetCheckExecutionContext, storemon: StoremonState
) -> dg.AssetCheckResult:
    """Every uptime and downtime lies in [0, the period's length]: 60 min, 24 h, 168 h."""

    def describe(as_of: datetime, found: checks.Finding) -> Outcome:
        return Outcome(
            found.failing == 0,
            f"{found.failing} of {found.checked} stores have a value outside [0, period] "
            "(hour: 0-60 min, day: 0-24 h, week: 0-168 h)"
            if found.failing
            else f"all values of {found.checked} stores within [0, period]",
            {
                "stores_checked": found.checked,
                "stores_failing": found.failing,
                "failing_stores": markdown(found.sample),
            },
        )

    def check(con, as_of_by_hour):
        findings = checks.values_out_of_period(con, list(as_of_by_hour))
        return _stored_outcomes(as_of_by_hour, findings, describe)

    return _evaluate(context, storemon, check)


@dg.asset_check(**BLOCKING)
def one_row_per_store_with_polls(
    context: dg.AssetCheckExecutionContext, storemon: StoremonState
) -> dg.AssetCheckResult:
    """Exactly the stores with a poll at or before the as-of, each exactly once."""

    def check(con, as_of_by_hour):
        newest = latest_poll(con)
        resolved = {h: a or partition_as_of(h, newest) for h, a in as_of_by_hour.items()}
        outcomes = {}
        for hour, found in checks.reported_stores_mismatch(con, resolved).items():
            problems = [
                f"{len(found.missing)} store(s) with polls missing, e.g. {found.missing[:3]}"
                if found.missing else "",
                f"{len(found.extra)} store(s) without polls reported, e.g. {found.extra[:3]}"
                if found.extra else "",
                f"{len(found.duplicated)} store(s) reported more than once, e.g. "
                f"{found.duplicated[:3]}" if found.duplicated else "",
            ]
            problems = [p for p in problems if p]
            outcomes[hour] = Outcome(
                not problems,
                "; ".join(problems) or f"{found.rows} rows, one per store with polls",
                {
                    "as_of": str(found.as_of),
                    "rows": found.rows,
                    "stores_with_polls": found.stores_with_polls,
                    "missing": len(found.missing),
                    "extra": len(found.extra),
                    "duplicated": len(found.duplicated),
                },
            )
        return outcomes

    return _evaluate(context, storemon, check)


@dg.asset_check(**CHECK_KWARGS)
def polls_fresh(
    context: dg.AssetCheckExecutionContext, storemon: StoremonState
) -> dg.AssetCheckResult:
    """Warns when the newest poll the report could use is older than the freshness limit,
    measured from the end of the partition's hour: the report then describes an older instant
    than the hour it stands for (a feed has stopped, or the data is historical)."""
    limit = timedelta(hours=storemon.freshness_limit_hours)

    def check(con, as_of_by_hour):
        newest = latest_poll(con)
        resolved = {h: a or partition_as_of(h, newest) for h, a in as_of_by_hour.items()}
        newest_by_hour = checks.newest_polls(con, resolved, timedelta(days=1))
        outcomes = {}
        for hour, as_of in resolved.items():
            newest_poll = newest_by_hour.get(hour)
            age = None if newest_poll is None else hour + timedelta(hours=1) - newest_poll
            hours_old = "over 24 h" if age is None else f"{age.total_seconds() / 3600:.2f} h"
            outcomes[hour] = Outcome(
                age is not None and age <= limit,
                f"newest poll is {hours_old} before the end of partition {partition_key(hour)} "
                f"(limit {storemon.freshness_limit_hours:g} h)",
                {
                    "as_of": str(as_of),
                    "newest_poll": str(newest_poll),
                    "age_hours": float("nan") if age is None
                    else round(age.total_seconds() / 3600, 3),
                    "limit_hours": storemon.freshness_limit_hours,
                },
            )
        return outcomes

    return _evaluate(context, storemon, check, dg.AssetCheckSeverity.WARN)


report_checks = [
    uptime_plus_downtime_is_business_time,
    values_within_period,
    one_row_per_store_with_polls,
    polls_fresh,
]


@dg.asset_check(
    asset=MONTHLY_SLA,
    name="month_is_the_sum_of_its_days",
    partitions_def=sla_months,
    pool=DUCKDB_POOL,
    blocking=True,
)
def month_is_the_sum_of_its_days(
    context: dg.AssetCheckExecutionContext, storemon: StoremonState
) -> dg.AssetCheckResult:
    """Business time = the sum of its days: per store, the saved month's business time, uptime
    and downtime (read from the settled days, and the rest from the polls) equal, to the
    microsecond, the sums of its local days computed again from the polls alone in one pass,
    as the month saw them: each as of the month's end in the store's zone, cut at the saved
    latest poll (docs/semantics.md §2.17)."""
    month = context.partition_key
    path = saved_month_path(storemon.sla_dir, month)
    if not path.exists():
        with storemon.sla_connection() as con:
            polls = latest_poll(con) is not None
        return dg.AssetCheckResult(
            passed=not polls,
            description=f"month {month} is not saved ({path})"
            + ("" if polls else ": no polls are loaded yet, nothing to compare"),
            metadata={"stores_compared": 0, "mismatches": 0},
        )
    saved_con, saved = load_sla(path, storemon.settings.duckdb_limits)
    try:
        rows = sla_micros(saved_con)
    finally:
        saved_con.close()
    days = days_as_seen(month_period(month))
    with storemon.sla_connection() as con:
        compute_sla(con, days, latest=saved.latest_poll, use_settled=False)
        found = compare_with_days(con, rows)
    return dg.AssetCheckResult(
        passed=found.mismatches == 0,
        description=(
            f"{found.mismatches} of {found.stores} stores: the month's business time, uptime "
            "or downtime is not the sum of its days' (e.g. "
            f"{', '.join(found.sample['store_id'].astype(str))})"
            if found.mismatches
            else f"all {found.stores} stores: the month is the sum of its days, to the "
            "microsecond"
        ),
        metadata={
            "stores_compared": found.stores,
            "mismatches": found.mismatches,
            "days": len(days),
            "latest_poll": str(saved.latest_poll),
            "saved": dg.MetadataValue.path(str(path)),
            "mismatch_examples": markdown(found.sample),
        },
    )


sla_checks = [month_is_the_sum_of_its_days]
