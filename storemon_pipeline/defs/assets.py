"""The asset graph: ingested feeds -> business windows (UTC) -> hourly uptime reports; the feeds
-> settled local days -> monthly SLAs; the feeds -> the stores' alerts.

Thin wiring over the engine modules: every asset opens DuckDB, calls engine functions, and
records what an operator wants to see in the materialization's metadata. Heavy work stays in
DuckDB, set-based; nothing but small summaries passes through Python.
"""


import time
import warnings
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import dagster as dg
import duckdb
import pandas as pd
from pydantic import Field

from storemon_pipeline.defs.keys import (
    BUSINESS_HOURS,
    INGEST_KEYS,
    MONTHLY_SLA,
    POLLS,
    QUARANTINE,
    SLA_DAYS,
    SPECIAL_HOURS,
    STORE_ALERTS,
    TIMEZONES,
)
from storemon_pipeline.defs.metadata import markdown, markdown_table, timestamp
from storemon_pipeline.defs.partitions import (
    add_report_partitions,
    add_sla_months,
    report_partitions,
    sla_months,
)
from storemon_pipeline.defs.resources import StoremonState
from storemon_pipeline.defs.tags import RECOMPUTE_STALE, RECOMPUTE_TAG
from storemon_pipeline.engine.alerts import evaluate_alerts, read_alerts
from storemon_pipeline.engine.db import ensure_spill_room
from storemon_pipeline.engine.delivery import save_delivery_status
from storemon_pipeline.engine.history import (
    HistoryUpdate,
    backlog_stores,
    partition_as_of,
    partition_hour,
    partition_hour_of,
    partition_key,
    partitions_changed_by,
    update_history,
)
from storemon_pipeline.engine.ingest import (
    FileResult,
    data_version,
    drop_expired_polls,
    feed_tables,
    ingest_paths,
)
from storemon_pipeline.engine.report import (
    FinishedReport,
    NoPollsError,
    export_report_csv,
    keep_latest_windows,
    kept_history,
    latest_poll,
    most_downtime,
    result_summary,
)
from storemon_pipeline.engine.settled import Settlement, check_settled_days, settle_days
from storemon_pipeline.engine.sla import (
    compute_sla,
    export_sla_csv,
    month_period,
    save_sla,
    saved_month_path,
    sla_progress,
    sla_summary,
    sla_worst,
)
from storemon_pipeline.engine.state import report_csv_path, write_latest_poll, write_report_sidecar
from storemon_pipeline.engine.windows import windows_summary
from storemon_pipeline.engine.zones import DEFAULT_TIMEZONE

# A backfill of many report partitions is one run (BackfillPolicy.single_run(), a beta
# parameter in Dagster 1.13, pinned below 1.14).
warnings.filterwarnings("ignore", category=dg.BetaWarning, message=".*backfill_policy.*")

# Every op that opens the DuckDB file is in this pool; dagster.yaml limits it to one run at a
# time. A run that still finds the file locked (e.g. by a `storemon` CLI command) waits in
# StoremonState.connect() and, past that, is retried.
DUCKDB_POOL = "duckdb"

# The polls should keep arriving: a feed polls each store about once an hour, so an ingest older
# than this is late (Dagster's asset health shows it; the polls_fresh check asks the same of the
# polls' own instants).
POLLS_FRESHNESS = dg.FreshnessPolicy.time_window(
    fail_window=timedelta(hours=2), warn_window=timedelta(hours=1)
)

REJECTED_SHARE_CHECK = "rejected_rows_share"
FILES_RECOGNISED_CHECK = "files_recognised"

INGEST_CHECK_SPECS = [
    dg.AssetCheckSpec(
        REJECTED_SHARE_CHECK,
        asset=QUARANTINE,
        description="The share of this ingest's rows that were rejected is under the limit.",
    ),
    dg.AssetCheckSpec(
        FILES_RECOGNISED_CHECK,
        asset=QUARANTINE,
        description="Every file of this ingest had the header of one of the four feeds.",
    ),
]


class IngestConfig(dg.Config):
    """Which files to load. The sensor passes the new files of `incoming/`."""

    paths: list[str] = Field(
        default=[],
        description=(
            "CSV files (.csv, .csv.gz) or folders of them, loaded in this order. Empty: the sample "
            "data folder `data/` of the checkout, then `$STOREMON_HOME/incoming/`."
        ),
    )


@dg.multi_asset(
    name="ingest",
    specs=[
        dg.AssetSpec(
            POLLS,
            group_name="ingest",
            kinds={"duckdb"},
            description="Store-status polls (store, UTC instant, active?), deduplicated; loaded "
            "incrementally: a file is loaded once, a row already stored is not stored again.",
            freshness_policy=POLLS_FRESHNESS,
        ),
        dg.AssetSpec(
            BUSINESS_HOURS,
            group_name="ingest",
            kinds={"duckdb"},
            description="Weekly business hours in each store's local time; the latest file "
            "replaces the previous one. Stores without rows are open 24x7.",
        ),
        dg.AssetSpec(
            SPECIAL_HOURS,
            group_name="ingest",
            kinds={"duckdb"},
            description="Holidays, closures and other special days in each store's local "
            "dates; the latest file replaces the previous one. A date with rows has those hours "
            "(or none: closed) instead of its weekly ones.",
        ),
        dg.AssetSpec(
            TIMEZONES,
            group_name="ingest",
            kinds={"duckdb"},
            description="Each store's IANA time zone; the latest file replaces the previous one. "
            "Stores without one are in America/Chicago.",
        ),
        dg.AssetSpec(
            QUARANTINE,
            group_name="ingest",
            kinds={"duckdb"},
            description="Every rejected input row with its file, line, raw text and reason: bad "
            "input never aborts a load and is never silently dropped.",
        ),
    ],
    check_specs=INGEST_CHECK_SPECS,
    pool=DUCKDB_POOL,
)
def ingest(
    context: dg.AssetExecutionContext, config: IngestConfig, storemon: StoremonState
) -> Iterator[dg.MaterializeResult]:
    """Load CSV files of the four feeds into DuckDB (engine: ``ingest.ingest_paths``)."""
    paths = [Path(p) for p in config.paths] or storemon.default_ingest_paths()
    context.log.info(f"ingesting {', '.join(map(str, paths))}")
    started = time.perf_counter()
    with storemon.connect() as con:
        previous_latest = latest_poll(con)
        results = ingest_paths(
            con,
            paths,
            progress=lambda r: log_file_result(context, r),
            guards=storemon.settings.ingest_guards,
        )
        expired = 0
        if storemon.retention_days:
            expired = drop_expired_polls(con, kept_history(storemon.retention_days))
            context.log.info(f"retention: {expired} polls older than the kept history dropped")
        newest_poll = latest_poll(con)
        version = data_version(con)
        metadata = record_ingest(
            context.instance, con, results, expired, previous_latest, newest_poll
        )
    write_latest_poll(storemon.state_dir, newest_poll, version)
    context.log.info(f"ingested {len(results)} file(s) in {time.perf_counter() - started:.2f} s")
    for key in metadata:
        yield dg.MaterializeResult(asset_key=key, metadata=metadata[key])
    yield from ingest_check_results(results, storemon.rejected_share_limit)


def record_ingest(
    instance: dg.DagsterInstance,
    con: duckdb.DuckDBPyConnection,
    results: list[FileResult],
    expired: int,
    previous_latest: datetime | None,
    newest_poll: datetime | None,
) -> dict[dg.AssetKey, dict[str, object]]:
    """After an ingest (one file or shards): the report partitions of the hours its polls fall
    in added, and the SLA months of those hours; each feed asset's metadata — what its table
    holds now, what this ingest added, the partitions it changed, the files."""
    new_hours = sorted({hour for r in results for hour in r.poll_hours})
    added = add_report_partitions(instance, new_hours)
    months = add_sla_months(instance, new_hours)
    changed = partitions_changed_by(new_hours, previous_latest, newest_poll)
    metadata = _ingest_metadata(con, results, expired)
    backlog = backlog_stores(con)
    if backlog and not changed and newest_poll is not None:
        # only stored partitions changed (a new snapshot): the newest run brings them up to date
        changed = [partition_hour_of(newest_poll)]
    metadata["polls"] |= {
        "new_report_partitions": len(added),
        "new_sla_months": dg.MetadataValue.json(months),
        "report_partitions_to_refresh": dg.MetadataValue.json([partition_key(h) for h in changed]),
        "stores_with_late_data": backlog,
    }
    files = dg.MetadataValue.md(_files_table(results))
    return {
        key: {**metadata[key.path[-1]], "files": files}
        for key in INGEST_KEYS
    }


def log_file_result(context: dg.AssetExecutionContext, result: FileResult) -> None:
    if result.status == "refused":
        context.log.error(result.summary())
    else:
        context.log.info(result.summary())


def _files_table(results: list[FileResult]) -> str:
    frame = pd.DataFrame(
        [
            {
                "file": Path(r.file).name,
                "feed": r.feed or "-",
                "status": r.status,
                "rows read": r.rows_read,
                "loaded": r.rows_loaded,
                "duplicate": r.rows_duplicate,
                "rejected": r.rows_rejected,
                "note": r.message,
            }
            for r in results
        ]
    )
    return markdown_table(frame)


def _ingest_metadata(
    con: duckdb.DuckDBPyConnection, results: list[FileResult], expired: int
) -> dict[str, dict[str, object]]:
    """Per table: what it holds now, and what this run added."""

    def loaded(feed: str) -> int:
        return sum(r.rows_loaded for r in results if r.feed == feed and r.status == "loaded")

    tables = feed_tables(con, [r.file for r in results if r.status == "loaded"])
    by_reason_run: dict[str, int] = {}
    for r in results:
        for reason, n in r.rejected.items():
            label = f"{r.feed}: {reason}"
            by_reason_run[label] = by_reason_run.get(label, 0) + n
    rows_read = sum(r.rows_read for r in results)
    rows_rejected = sum(by_reason_run.values())
    polls_meta: dict[str, object] = {
        "dagster/row_count": tables.polls,
        "rows_loaded": loaded("polls"),
        "rows_duplicate": sum(r.rows_duplicate for r in results if r.feed == "polls"),
        "rows_expired": expired,
        "stores": tables.poll_stores,
    }
    if tables.latest_poll is not None:
        polls_meta |= {
            "first_poll": timestamp(tables.first_poll),
            "latest_poll": timestamp(tables.latest_poll),
            "latest_report_partition": partition_key(tables.latest_poll),
        }
    return {
        "polls": polls_meta,
        "business_hours": {
            "dagster/row_count": tables.hours_rows,
            "rows_loaded": loaded("business_hours"),
            "stores": tables.hours_stores,
        },
        "special_hours": {
            "dagster/row_count": tables.special_rows,
            "rows_loaded": loaded("special_hours"),
            "stores": tables.special_stores,
            "store_dates": tables.special_store_dates,
            "closed_store_dates": tables.closed_store_dates,
            "first_date": str(tables.special_dates_span[0] or ""),
            "last_date": str(tables.special_dates_span[1] or ""),
            "next_special_dates": markdown(tables.next_special_dates),
        },
        "timezones": {
            "dagster/row_count": tables.timezone_rows,
            "rows_loaded": loaded("timezones"),
            "stores": tables.timezone_stores,
            "distinct_timezones": tables.distinct_timezones,
        },
        "quarantine": {
            "dagster/row_count": tables.quarantined,
            "rows_read": rows_read,
            "rows_rejected": rows_rejected,
            "rejected_by_reason": dg.MetadataValue.json(by_reason_run),
            "rejected_by_reason_all_time": dg.MetadataValue.json(tables.rejected_by_reason),
            "refused_files": dg.MetadataValue.json(
                [r.file for r in results if r.status == "refused"]
            ),
            "rejected_rows_sample": markdown(tables.rejected_sample),
        },
    }


def ingest_check_results(
    results: list[FileResult], limit: float
) -> Iterator[dg.AssetCheckResult]:
    rows_read = sum(r.rows_read for r in results)
    rejected = sum(r.rows_rejected for r in results)
    share = rejected / rows_read if rows_read else 0.0
    worst = max(
        (r for r in results if r.rows_read), key=lambda r: r.rows_rejected / r.rows_read,
        default=None,
    )
    yield dg.AssetCheckResult(
        asset_key=QUARANTINE,
        check_name=REJECTED_SHARE_CHECK,
        passed=share <= limit,
        severity=dg.AssetCheckSeverity.WARN,
        description=(
            f"{rejected} of {rows_read} rows read were rejected ({share:.2%}; limit {limit:.2%})"
        ),
        metadata={
            "rows_read": rows_read,
            "rows_rejected": rejected,
            "rejected_share": share,
            "limit": limit,
            "worst_file": worst.file if worst else "",
        },
    )
    refused = [r for r in results if r.status == "refused"]
    yield dg.AssetCheckResult(
        asset_key=QUARANTINE,
        check_name=FILES_RECOGNISED_CHECK,
        passed=not refused,
        severity=dg.AssetCheckSeverity.WARN,
        description="; ".join(r.summary() for r in refused) or f"{len(results)} file(s) recognised",
        metadata={"refused_files": dg.MetadataValue.json([r.file for r in refused])},
    )


@dg.asset(
    group_name="business_time",
    deps=[POLLS, BUSINESS_HOURS, SPECIAL_HOURS, TIMEZONES],
    kinds={"duckdb"},
    pool=DUCKDB_POOL,
)
def business_windows(
    context: dg.AssetExecutionContext, storemon: StoremonState
) -> dg.MaterializeResult:
    """Each store's business time as merged UTC intervals, from its local weekly hours and zone
    (docs/semantics.md §2.6: a boundary is the first instant the wall clock reads that time or
    later).

    The reports read their windows from this table where it covers their span (it holds 16 days
    before the latest poll, enough for a week of hourly reports, and two after; an ingest that
    changes the hours, zones or special hours empties it), so it is built again only every other
    day of a live feed, or after such a change; a report never reads old windows.
    """
    started = time.perf_counter()
    with storemon.connect() as con:
        rebuilt = keep_latest_windows(con)
        summary = windows_summary(con)
    metadata: dict[str, object] = {
        "rebuilt": rebuilt,
        "dagster/row_count": summary.windows,
        "stores_with_polls": summary.stores_with_polls,
        "stores_with_windows": summary.stores_with_windows,
        "stores_open_24x7": summary.stores_open_24x7,
        "stores_in_default_timezone": summary.stores_in_default_timezone,
        "compute_seconds": round(time.perf_counter() - started, 3),
    }
    if summary.first_window_start is not None:
        metadata |= {
            "first_window_start": timestamp(summary.first_window_start),
            "last_window_end": timestamp(summary.last_window_end),
        }
    context.log.info(
        f"{summary.windows} business windows for {summary.stores_with_windows} stores"
    )
    return dg.MaterializeResult(metadata=metadata)


@dg.asset(
    group_name="reports",
    partitions_def=report_partitions,
    backfill_policy=dg.BackfillPolicy.single_run(),
    deps=[business_windows, POLLS],
    kinds={"duckdb", "csv"},
    pool=DUCKDB_POOL,
)
def uptime_report(
    context: dg.AssetExecutionContext, storemon: StoremonState
) -> dg.MaterializeResult:
    """The uptime/downtime report per store for the last hour, day and week.

    Partition H is the report as of min(end of H, latest poll): the partition holding the latest
    poll is the current report, older partitions are the stores' history. A run computes all its
    partitions in one pass (a backfill of many hours is one run) and writes their rows to the
    report history (`history.duckdb`, table `uptime_report`); it also writes the CSV of its
    newest partition, immutable, to `$STOREMON_HOME/reports/<run id>.csv` with a sidecar
    `<run id>.json` (as_of, stores, partition) that the REST facade serves.
    """
    started = time.perf_counter()
    keys = sorted(context.partition_keys)
    run_id = context.run.run_id
    csv_path = report_csv_path(storemon.reports_dir, run_id)
    ensure_spill_room(storemon.state_dir, storemon.settings.duckdb_limits)
    with storemon.connect() as con:
        newest_poll = latest_poll(con)
        if newest_poll is None:
            raise NoPollsError("no polls are loaded yet: materialize the ingest assets first")
        as_of_by_hour = {
            partition_hour(key): partition_as_of(partition_hour(key), newest_poll) for key in keys
        }
        update = update_history(
            con, storemon.history_path, as_of_by_hour, run_id,
            only_stale=context.run.tags.get(RECOMPUTE_TAG) == RECOMPUTE_STALE,
        )
        as_of = as_of_by_hour[max(as_of_by_hour)]
        export_report_csv(con, csv_path, as_of)
        report = FinishedReport(
            update.rows, as_of, result_summary(con, as_of),
            most_downtime(con, as_of), newest_poll, data_version(con),
        )
    late = update.convergence
    context.log.info(
        f"{len(update.whole)} of {len(keys)} partition(s) computed whole; late data: "
        f"{late.stores} store(s) in the backlog, {late.partitions} other stored "
        f"partition(s) recomputed for them ({late.rows} rows)"
    )
    return finish_report(
        context, storemon, keys, report, time.perf_counter() - started, update_metadata(update)
    )


def update_metadata(update: HistoryUpdate) -> dict[str, object]:
    """What the run did to the history: partitions computed whole, and the late data's."""
    convergence = update.convergence
    metadata: dict[str, object] = {
        "partitions_computed_whole": len(update.whole),
        "late_data_stores": convergence.stores,
        "late_data_partitions": convergence.partitions,
        "late_data_rows": convergence.rows,
    }
    if convergence.first_partition is not None:
        metadata |= {
            "late_data_first_partition": partition_key(convergence.first_partition),
            "late_data_last_partition": partition_key(convergence.last_partition),
        }
    return metadata


def finish_report(
    context: dg.OpExecutionContext,
    storemon: StoremonState,
    keys: list[str],
    report: FinishedReport,
    seconds: float,
    extra_metadata: dict[str, object] | None = None,
) -> dg.MaterializeResult:
    """The report's sidecar (its CSV is written: the REST facade may serve it now), a log line
    and the materialization's metadata."""
    run_id = context.run.run_id
    csv_path = report_csv_path(storemon.reports_dir, run_id)
    newest_hour = max(partition_hour(key) for key in keys)
    sidecar = write_report_sidecar(
        storemon.reports_dir,
        run_id,
        as_of=report.as_of,
        stores=report.summary.stores,
        partition=partition_key(newest_hour),
        latest_poll=report.latest_poll,
        data_version=report.data_version,
    )
    context.log.info(
        f"{len(keys)} partition(s), {report.rows} rows saved in {seconds:.2f} s; the newest, "
        f"as of {report.as_of} UTC: {report.summary.stores} stores, written to {csv_path}"
    )
    metadata: dict[str, object] = {
        "partitions": len(keys),
        "first_partition": keys[0],
        "last_partition": keys[-1],
        "history_rows": report.rows,
        "as_of": timestamp(report.as_of),
        "latest_poll": timestamp(report.latest_poll),
        "stores": report.summary.stores,
        "stores_with_downtime_last_week": report.summary.stores_with_downtime_last_week,
        "most_downtime_last_week": markdown(report.most_downtime),
        "csv": dg.MetadataValue.path(str(csv_path)),
        "sidecar": dg.MetadataValue.path(str(sidecar)),
        "compute_seconds": round(seconds, 3),
    }
    share = report.summary.uptime_share_last_week
    if share is not None:
        metadata["uptime_share_last_week"] = round(share, 6)
    return dg.MaterializeResult(metadata=metadata | (extra_metadata or {}))


SETTLED_DAYS_CHECK = "settled_days_are_the_polls"


@dg.asset(
    key=SLA_DAYS,
    group_name="sla",
    deps=[POLLS, BUSINESS_HOURS, SPECIAL_HOURS, TIMEZONES],
    kinds={"duckdb"},
    pool=DUCKDB_POOL,
    check_specs=[
        dg.AssetCheckSpec(
            SETTLED_DAYS_CHECK,
            asset=SLA_DAYS,
            blocking=True,
            description="A sample of stores' last settled days, computed again from their "
            "polls, are the settled ones to the microsecond (business time, uptime, incidents).",
        )
    ],
)
def sla_days(
    context: dg.AssetExecutionContext, storemon: StoremonState
) -> Iterator[dg.MaterializeResult | dg.AssetCheckResult]:
    """Each store's local days, settled once they have ended and a poll determines them
    (docs/semantics.md §2.17): the business time, uptime and inactive runs that the monthly SLA
    (and any month or ISO week asked for) reads instead of the day's polls. A step of every
    ingest run; late polls and new snapshots make their days settled again."""
    started = time.perf_counter()
    with storemon.connect() as con:
        settlement = settle_days(con)
        seconds = time.perf_counter() - started
        checked = check_settled_days(con)
    context.log.info(
        f"settled {settlement.days} store-day(s) of {settlement.stores} store(s) in "
        f"{seconds:.2f} s; {settlement.waiting} store(s) wait for a poll"
    )
    yield dg.MaterializeResult(metadata=settlement_metadata(settlement, seconds))
    yield dg.AssetCheckResult(
        check_name=SETTLED_DAYS_CHECK,
        passed=checked.mismatches == 0,
        description=(
            f"{checked.mismatches} of {checked.days} store-days differ from their polls"
            if checked.mismatches
            else f"{checked.days} store-days of {checked.stores} stores are their polls'"
        ),
        metadata={"stores": checked.stores, "store_days": checked.days,
                  "mismatches": checked.mismatches,
                  "mismatch_examples": markdown(checked.sample)},
    )


def settlement_metadata(settlement: Settlement, seconds: float) -> dict[str, object]:
    """What a settlement did and what is settled, for the sla_days asset (one file or shards)."""
    metadata: dict[str, object] = {
        "store_days_settled": settlement.days,
        "stores_settled": settlement.stores,
        "stores_waiting": settlement.waiting,
        "incident_pieces": settlement.downtime_pieces,
        "passes": settlement.passes,
        "settled_store_days": settlement.total_days,
        "dagster/row_count": settlement.total_days,
        "compute_seconds": round(seconds, 3),
    }
    if settlement.first_date is not None:
        metadata["first_date"] = str(settlement.first_date)
        metadata["last_date"] = str(settlement.last_date)
    if settlement.settled_until is not None:
        metadata["settled_until"] = timestamp(settlement.settled_until)
    return metadata


def sla_csv_path(reports_dir: Path, month: str) -> Path:
    """The CSV of a month's SLA, beside the reports."""
    return reports_dir / f"sla-{month}.csv"


@dg.asset(
    key=MONTHLY_SLA,
    group_name="sla",
    partitions_def=sla_months,
    deps=[POLLS, BUSINESS_HOURS, SPECIAL_HOURS, TIMEZONES, SLA_DAYS],
    kinds={"duckdb", "csv"},
    pool=DUCKDB_POOL,
)
def monthly_sla(context: dg.AssetExecutionContext, storemon: StoremonState) -> dg.MaterializeResult:
    """Each store's availability over its local calendar month (docs/semantics.md §2.17), as of
    the latest poll: a month not over yet is the month so far, so a month materialized again
    after it ended is settled. Saved as `$STOREMON_HOME/sla/month-<M>.duckdb` (what the REST
    API serves without the stores' database) and written as `reports/sla-<M>.csv`. Computed on
    the stores' database(s) read-only: one file or every shard."""
    started = time.perf_counter()
    month = context.partition_key
    period = month_period(month)
    target = storemon.sla_target_pct
    saved_path = saved_month_path(storemon.sla_dir, month)
    csv_path = sla_csv_path(storemon.reports_dir, month)
    with storemon.sla_connection() as con:
        newest_poll = latest_poll(con)
        if newest_poll is None:
            note = "no polls are loaded yet: no store to report, nothing saved"
            context.log.warning(f"month {month}: {note}")
            return dg.MaterializeResult(
                metadata={"stores": 0, "dagster/row_count": 0, "target_pct": target,
                          "note": note}
            )
        run = compute_sla(con, [period], target_pct=target, latest=newest_poll)
        storemon.sla_dir.mkdir(parents=True, exist_ok=True)
        save_sla(con, saved_path, run)
        export_sla_csv(con, csv_path)
        summary = sla_summary(con)
        progress = sla_progress(con, run.latest_poll)
        worst = sla_worst(con, 10)
    seconds = time.perf_counter() - started
    context.log.info(
        f"month {month} as of {run.latest_poll} UTC: {summary.stores} stores, "
        f"{summary.stores_below_target} below {target:g} %; saved to {saved_path} in "
        f"{seconds:.2f} s"
    )
    metadata: dict[str, object] = {
        "stores": summary.stores,
        "dagster/row_count": summary.stores,
        "stores_below_target": summary.stores_below_target,
        "stores_without_business_time": summary.stores_without_business_time,
        "stores_month_ended": progress.ended,
        "stores_month_open": progress.cut,
        "stores_month_not_started": progress.not_started,
        "latest_poll": timestamp(run.latest_poll),
        "target_pct": target,
        "saved": dg.MetadataValue.path(str(saved_path)),
        "csv": dg.MetadataValue.path(str(csv_path)),
        "worst_stores": markdown(worst),
        "compute_seconds": round(seconds, 3),
    }
    if summary.availability_pct is not None:
        metadata["availability_pct"] = round(summary.availability_pct, 6)
    if progress.cut or progress.not_started:
        metadata["note"] = (
            f"{progress.cut + progress.not_started} of {summary.stores} stores' month is not "
            f"over at the latest poll ({run.latest_poll} UTC): counted up to it"
        )
    if summary.stores == 0:
        metadata["note"] = f"no store has a poll by the latest poll ({run.latest_poll} UTC)"
    return dg.MaterializeResult(metadata=metadata)


DELIVERIES_CHECK = "alert_deliveries_alive"


@dg.asset(
    key=STORE_ALERTS,
    group_name="alerts",
    deps=[POLLS, BUSINESS_HOURS, SPECIAL_HOURS, TIMEZONES],
    kinds={"duckdb"},
    pool=DUCKDB_POOL,
    check_specs=[
        dg.AssetCheckSpec(
            DELIVERIES_CHECK,
            asset=STORE_ALERTS,
            description="No alert event was given up undelivered (dead) by the webhooks.",
        )
    ],
)
def store_alerts(
    context: dg.AssetExecutionContext, storemon: StoremonState
) -> Iterator[dg.MaterializeResult | dg.AssetCheckResult]:
    """The alerts on stores down in their business hours (docs/semantics.md §2.18), decided as
    of the latest poll after each ingest; the events they produce wait in the outbox for the
    sensor ``alert_deliveries``, which posts them to the webhooks. One DuckDB file only: with
    shards the alerts are not evaluated."""
    settings = storemon.settings
    started = time.perf_counter()
    with storemon.connect() as con:
        result = evaluate_alerts(
            con,
            min_down_minutes=settings.alert_min_down_minutes,
            default_timezone=DEFAULT_TIMEZONE,
        )
        status = save_delivery_status(con, storemon.state_dir, len(settings.alert_webhook_urls))
        open_alerts = read_alerts(con, "open")
    seconds = time.perf_counter() - started
    if result.as_of is None:
        context.log.info("no polls are loaded yet: no alert to evaluate")
    else:
        context.log.info(
            f"alerts as of {result.as_of} UTC: {result.opened} opened, {result.resolved} "
            f"resolved, {result.open} open; deliveries: {status.pending} pending, "
            f"{status.dead} dead ({seconds:.2f} s)"
        )
    shown = open_alerts.head(10)[["alert_id", "store_id", "down_since", "business_minutes_down"]]
    metadata: dict[str, object] = {
        "open_alerts": result.open,
        "opened": result.opened,
        "resolved": result.resolved,
        "still_down_updated": result.updated,
        "deliveries_pending": status.pending,
        "deliveries_delivered": status.delivered,
        "deliveries_dead": status.dead,
        "webhooks": status.webhooks,
        "min_down_minutes": settings.alert_min_down_minutes,
        "longest_open": markdown(
            shown.sort_values("business_minutes_down", ascending=False).round(2)
        ),
        "compute_seconds": round(seconds, 3),
    }
    if result.as_of is not None:
        metadata["as_of"] = timestamp(result.as_of)
    yield dg.MaterializeResult(metadata=metadata)
    yield dg.AssetCheckResult(
        check_name=DELIVERIES_CHECK,
        passed=status.dead == 0,
        severity=dg.AssetCheckSeverity.WARN,
        description=(
            f"{status.dead} alert event(s) given up undelivered; see `storemon alerts` and "
            "the outbox's last_error" if status.dead
            else f"no event given up ({status.pending} pending, {status.delivered} delivered)"
        ),
        metadata={"dead": status.dead, "pending": status.pending},
    )
