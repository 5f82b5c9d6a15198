"""The `monthly_sla` asset (docs/semantics.md §2.17), its partitions, its check and its schedule,
against a real Dagster instance and real DuckDB files: the sample data in data/ ingested, and
its one (partial) month materialized once for the module."""

from __future__ import annotations

import csv
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import dagster as dg
import duckdb
import pandas as pd
import pytest
from test_dagster import _checks, _materializations, _new_instance

from storemon_pipeline.definitions import build_defs
from storemon_pipeline.defs.assets import monthly_sla, sla_csv_path
from storemon_pipeline.defs.keys import MONTHLY_SLA
from storemon_pipeline.defs.partitions import month_key, sla_months
from storemon_pipeline.defs.schedules import monthly_sla_schedule
from storemon_pipeline.defs.tags import trigger_tags
from storemon_pipeline.engine.db import database
from storemon_pipeline.engine.history import poll_hours
from storemon_pipeline.engine.sla import (
    SLA_COLUMNS,
    Period,
    compare_with_days,
    compute_sla,
    days_as_seen,
    load_sla,
    local_days,
    month_period,
    saved_month_path,
    sla_database,
    sla_frame,
    sla_micros,
    sla_summary,
)
from storemon_pipeline.settings import Settings

MONTH = "2023-01"  # the sample's polls: 2023-01-18 .. 2023-01-25
CHECK = "month_is_the_sum_of_its_days"

sla_checks_job = dg.define_asset_job(
    "monthly_sla_checks_job", selection=dg.AssetSelection.checks_for_assets(monthly_sla)
)


@dataclass
class SlaMonth:
    settings: Settings
    defs: dg.Definitions
    instance: dg.DagsterInstance
    ingest: dg.ExecuteInProcessResult
    run: dg.ExecuteInProcessResult  # monthly_sla_job for MONTH


def _defs(settings: Settings) -> dg.Definitions:
    return dg.Definitions.merge(build_defs(settings), dg.Definitions(jobs=[sla_checks_job]))


@pytest.fixture(scope="module")
def sla_month(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SlaMonth]:
    """The sample ingested by the ingest job, then the month's SLA materialized with its check."""
    settings = Settings(home=tmp_path_factory.mktemp("sla-state"))
    settings.ensure_dirs()
    defs = _defs(settings)
    with _new_instance(settings.dagster_home) as instance:
        ingest = defs.resolve_job_def("ingest_job").execute_in_process(instance=instance)
        run = defs.resolve_job_def("monthly_sla_job").execute_in_process(
            instance=instance, partition_key=MONTH
        )
        yield SlaMonth(settings, defs, instance, ingest, run)


def _direct(settings: Settings, month: str = MONTH) -> tuple[pd.DataFrame, datetime]:
    """The month computed straight on the state, as `storemon sla --month` would."""
    with sla_database(settings.shard_paths) as con:
        run = compute_sla(con, [month_period(month)], target_pct=settings.sla_target_pct)
        return sla_frame(con), run.latest_poll


def test_the_ingest_adds_the_local_months_of_its_polls(sla_month: SlaMonth) -> None:
    with database(sla_month.settings.duckdb_path, read_only=True) as con:
        hours = poll_hours(con)
    reach = timedelta(hours=14)
    expected = sorted({month_key(h + d) for h in hours for d in (-reach, reach)})
    # the sample's polls are days from either end of January, in every zone
    assert expected == [MONTH]
    assert sla_month.instance.get_dynamic_partitions(sla_months.name) == expected
    polls = _materializations(sla_month.ingest)["polls"]
    assert polls["new_sla_months"].value == [MONTH]


def test_the_saved_month_is_compute_sla_on_the_same_state(sla_month: SlaMonth) -> None:
    assert sla_month.run.success
    settings = sla_month.settings
    direct, latest = _direct(settings)
    saved_con, saved = load_sla(saved_month_path(settings.sla_dir, MONTH))
    try:
        pd.testing.assert_frame_equal(sla_frame(saved_con), direct)
        summary = sla_summary(saved_con)
    finally:
        saved_con.close()
    assert (saved.name, saved.local, saved.latest_poll) == (MONTH, True, latest)
    assert saved.target_pct == settings.sla_target_pct and saved.stores == len(direct) > 1000

    with sla_csv_path(settings.reports_dir, MONTH).open(newline="") as handle:
        rows = list(csv.reader(handle))
    assert rows[0] == SLA_COLUMNS
    assert [row[0] for row in rows[1:]] == list(direct["store_id"])

    metadata = _materializations(sla_month.run)["monthly_sla"]
    values = {key: value.value for key, value in metadata.items()}
    assert values["stores"] == summary.stores == len(direct)
    assert values["stores_below_target"] == summary.stores_below_target > 0
    assert values["stores_without_business_time"] == summary.stores_without_business_time
    assert values["availability_pct"] == pytest.approx(summary.availability_pct)
    # as of 2023-01-25 every store's January is still open: counted up to the latest poll
    assert (values["stores_month_ended"], values["stores_month_open"]) == (0, summary.stores)
    assert values["stores_month_not_started"] == 0
    assert values["latest_poll"] == latest.replace(tzinfo=UTC).timestamp()
    assert values["target_pct"] == settings.sla_target_pct
    assert values["saved"] == str(saved_month_path(settings.sla_dir, MONTH))
    assert values["csv"] == str(sla_csv_path(settings.reports_dir, MONTH))
    assert "not over" in values["note"]
    worst = values["worst_stores"].splitlines()
    assert worst[0].startswith("| store_id | availability_pct |") and len(worst) == 2 + 10
    lowest = direct[direct["business_hours"] > 0].sort_values("availability_pct").iloc[0]
    assert worst[2].startswith(f"| {lowest['store_id']} | {round(lowest['availability_pct'], 2)}")
    assert sla_month.instance.get_materialized_partitions(MONTHLY_SLA) == {MONTH}


def test_the_check_passes_the_month_that_is_the_sum_of_its_days(sla_month: SlaMonth) -> None:
    check = _checks(sla_month.run)[CHECK]
    assert check.passed, check.description
    assert check.partition == MONTH
    assert check.metadata["stores_compared"].value == _materializations(sla_month.run)[
        "monthly_sla"]["stores"].value
    assert check.metadata["mismatches"].value == 0
    assert check.metadata["days"].value == 31


def test_the_check_fails_and_blocks_on_a_tampered_saved_month(
    sla_month: SlaMonth, tmp_path: Path
) -> None:
    """A copy of the state whose saved month has one store's business time off by one
    microsecond: the check fails, and as it is blocking, so does its run."""
    settings = Settings(home=tmp_path / "copy")
    settings.ensure_dirs()
    shutil.copyfile(sla_month.settings.duckdb_path, settings.duckdb_path)
    shutil.copytree(sla_month.settings.sla_dir, settings.sla_dir)
    saved = saved_month_path(settings.sla_dir, MONTH)
    with duckdb.connect(str(saved)) as con:
        (store,) = con.execute("SELECT min(store_id) FROM sla_results").fetchone()
        con.execute(
            "UPDATE sla_results SET business_us = business_us + 1 WHERE store_id = ?", [store]
        )
    with _new_instance(settings.dagster_home) as instance:
        instance.add_dynamic_partitions(sla_months.name, [MONTH])
        result = _defs(settings).resolve_job_def(sla_checks_job.name).execute_in_process(
            instance=instance, tags={"dagster/partition": MONTH}, raise_on_error=False
        )
    assert not result.success
    check = _checks(result)[CHECK]
    assert not check.passed
    assert check.metadata["mismatches"].value == 1
    assert store in check.description and "1 of " in check.description
    failures = [e for e in result.all_events if e.is_step_failure]
    assert failures and "blocking asset check" in str(
        failures[0].step_failure_data.error.message
    )


def test_a_wrong_settled_day_fails_both_checks(sla_month: SlaMonth, tmp_path: Path) -> None:
    """A copy of the state in which one store's settled days count one microsecond more uptime:
    the month read from them is off, and its check, which computes the days again from the
    polls, fails; so does the sla_days check when the sample holds the store (all stores are
    checked here)."""
    from storemon_pipeline.engine.settled import check_settled_days

    assert _materializations(sla_month.ingest)["sla_days"]["store_days_settled"].value > 0
    settings = Settings(home=tmp_path / "copy")
    settings.ensure_dirs()
    shutil.copyfile(sla_month.settings.duckdb_path, settings.duckdb_path)
    with database(settings.duckdb_path) as con:
        (store_key, store) = con.execute(
            "SELECT store_key, store_id FROM sla_days JOIN stores USING (store_key) "
            "WHERE local_date = DATE '2023-01-23' AND uptime_us > 0 ORDER BY store_id LIMIT 1"
        ).fetchone()
        con.execute("UPDATE sla_days SET uptime_us = uptime_us + 1 "
                    "WHERE store_key = ? AND local_date = DATE '2023-01-23'", [store_key])
        checked = check_settled_days(con, stores=5000)
    assert checked.mismatches == 1 and list(checked.sample["store_id"]) == [store]
    with _new_instance(settings.dagster_home) as instance:
        instance.add_dynamic_partitions(sla_months.name, [MONTH])
        result = _defs(settings).resolve_job_def("monthly_sla_job").execute_in_process(
            instance=instance, partition_key=MONTH, raise_on_error=False
        )
    check = _checks(result)[CHECK]
    assert not check.passed and check.metadata["mismatches"].value == 1
    assert store in check.description


def test_the_schedule_settles_the_month_that_just_ended(sla_month: SlaMonth) -> None:
    def tick(instant: datetime):
        context = dg.build_schedule_context(
            instance=sla_month.instance, scheduled_execution_time=instant.replace(tzinfo=UTC)
        )
        return monthly_sla_schedule(context)

    for hour in (0, 12):
        request = tick(datetime(2023, 2, 1, hour, 5))
        assert isinstance(request, dg.RunRequest)
        assert (request.partition_key, request.run_key) == (MONTH, f"{MONTH}@{hour:02d}")
        assert request.tags == trigger_tags("schedule")
    skipped = tick(datetime(2023, 3, 1, 0, 5))  # February holds no polls
    assert isinstance(skipped, dg.SkipReason) and "2023-02" in skipped.skip_message
    assert monthly_sla_schedule.default_status == dg.DefaultScheduleStatus.RUNNING
    assert monthly_sla_schedule.cron_schedule == "5 0,12 1 * *"
    assert monthly_sla_schedule.execution_timezone == "UTC"


def test_a_month_without_polls_materializes_with_no_store(tmp_path: Path, capsys) -> None:
    """A state without polls: the month has no store, says so, saves nothing, and its check
    passes; `storemon up` catches the month up like any other."""
    from storemon_pipeline.up import catch_up_sla_months

    settings = Settings(home=tmp_path / "empty")
    settings.ensure_dirs()
    defs = build_defs(settings)
    with _new_instance(settings.dagster_home) as instance:
        instance.add_dynamic_partitions(sla_months.name, [MONTH])
        catch_up_sla_months(defs, instance, settings)
        assert instance.get_materialized_partitions(MONTHLY_SLA) == {MONTH}
        catch_up_sla_months(defs, instance, settings)
        record = instance.fetch_materializations(MONTHLY_SLA, limit=1).records[0]
    out = capsys.readouterr().out
    assert f"for month {MONTH}: ok" in out and "every SLA month is materialized" in out
    metadata = record.asset_materialization.metadata
    assert metadata["stores"].value == 0 and "no polls" in metadata["note"].value
    assert not saved_month_path(settings.sla_dir, MONTH).exists()


def test_monthly_sla_over_shards(tmp_path: Path) -> None:
    """With shards the month is computed over every shard's file, as one."""
    settings = Settings(home=tmp_path / "state", shards=2)
    settings.ensure_dirs()
    feed = tmp_path / "feed.csv"
    feed.write_text(
        "store_id,status,timestamp_utc\n"
        + "".join(f"s{k},{'active' if k % 3 else 'inactive'},2023-01-24 1{k}:06:00 UTC\n"
                  for k in range(6))
        + "s1,inactive,2023-01-25 10:00:00 UTC\n"
    )
    defs = build_defs(settings)
    with _new_instance(settings.dagster_home) as instance:
        ingest = defs.resolve_job_def("ingest_job").execute_in_process(
            instance=instance, run_config={"ops": {"ingest": {"config": {"paths": [str(feed)]}}}}
        )
        assert ingest.success
        assert instance.get_dynamic_partitions(sla_months.name) == [MONTH]
        result = defs.resolve_job_def("monthly_sla_job").execute_in_process(
            instance=instance, partition_key=MONTH
        )
    assert result.success and _checks(result)[CHECK].passed
    direct, _ = _direct(settings)
    saved_con, _ = load_sla(saved_month_path(settings.sla_dir, MONTH))
    try:
        pd.testing.assert_frame_equal(sla_frame(saved_con), direct)
    finally:
        saved_con.close()
    assert list(direct["store_id"]) == [f"s{k}" for k in range(6)]


def test_a_closed_month_is_compared_with_its_days_as_it_saw_them(sample_state: Path) -> None:
    """Once a store's period is over, its days as the period saw them are taken as of its end
    in its zone, not as of the latest poll: days taken later use the polls after the end.
    A four-day local period of the sample, over before its latest poll, stands for a month."""
    period = Period(datetime(2023, 1, 19), datetime(2023, 1, 23), True, "four days")
    with database(sample_state / "storemon.duckdb", read_only=True) as con:
        run = compute_sla(con, [period])
        saved = sla_micros(con)
        assert saved["period_end"].nunique() > 1  # one end per zone
        assert saved["period_end"].max() < pd.Timestamp(run.latest_poll)
        days = days_as_seen(period)
        assert len(days) == 4 and all(day.as_of_local for day in days)
        compute_sla(con, days, latest=run.latest_poll)
        found = compare_with_days(con, saved)
        assert (found.stores, found.mismatches) == (len(saved), 0)
        # the days all taken as of the latest poll: the tail of some stores' last day differs
        compute_sla(con, local_days(period, as_of=run.latest_poll), latest=run.latest_poll)
        differs = compare_with_days(con, saved)
    assert differs.stores == len(saved) and 0 < differs.mismatches < len(saved)
    assert (differs.sample["period_business_us"] == differs.sample["days_business_us"]).all()
