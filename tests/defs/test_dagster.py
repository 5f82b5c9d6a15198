"""The Dagster layer against real instances, real DuckDB files and real processes.

In-process part: one temporary state folder and Dagster instance (module-scoped), the sample
data in data/ ingested and reported once. Process part: `storemon up` as a subprocess on its own
state folder (what `dg dev` starts: webserver, daemon with the run queue and the sensors),
driven through the GraphQL client as the REST facade drives it, stopped with SIGINT and started
again.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import dagster as dg
import duckdb
import pytest
from support.faults import held_open
from support.up import Up

from storemon_pipeline.cli import main as storemon_main
from storemon_pipeline.definitions import build_defs
from storemon_pipeline.defs.assets import uptime_report
from storemon_pipeline.defs.partitions import report_partitions
from storemon_pipeline.defs.resources import StoremonState
from storemon_pipeline.defs.schedules import hourly_uptime_report
from storemon_pipeline.defs.tags import trigger_tags
from storemon_pipeline.engine.alerts import read_alerts
from storemon_pipeline.engine.history import (
    attach_history,
    latest_report_partition_key,
    partition_hour,
    partition_key,
    poll_hours,
    read_fleet_history,
    read_store_history,
)
from storemon_pipeline.engine.instants import parse_iso
from storemon_pipeline.engine.report import report_frame
from storemon_pipeline.engine.state import (
    read_latest_poll,
    read_report_sidecar,
    read_withheld_report,
)
from storemon_pipeline.settings import PROJECT_ROOT, SAMPLE_DATA_DIR, Settings
from storemon_pipeline.tools.receiver import running_receiver

SAMPLE_POLLS = SAMPLE_DATA_DIR / "store_status.csv.gz"  # 2023-01-18 .. 2023-01-25
CSV_VALUES = ["uptime_last_hour", "uptime_last_day", "uptime_last_week",
              "downtime_last_hour", "downtime_last_day", "downtime_last_week"]

checks_job = dg.define_asset_job(
    "uptime_report_checks_job", selection=dg.AssetSelection.checks_for_assets(uptime_report)
)


@dataclass
class Graph:
    settings: Settings
    defs: dg.Definitions
    instance: dg.DagsterInstance
    ingest: dg.ExecuteInProcessResult
    report: dg.ExecuteInProcessResult  # every partition, in one run
    partitions: list[str]
    partition: str  # the latest poll's
    latest_poll: datetime
    stores: int
    rejected: int

    def run(self, job: str, **kwargs) -> dg.ExecuteInProcessResult:
        return self.defs.resolve_job_def(job).execute_in_process(instance=self.instance, **kwargs)

    def con(self, read_only: bool = True) -> duckdb.DuckDBPyConnection:
        from storemon_pipeline.engine.db import connect

        con = connect(self.settings.duckdb_path, read_only=read_only, wait_seconds=30)
        attach_history(con, self.settings.history_path, read_only=read_only)
        return con


def _new_instance(dagster_home: Path) -> dg.DagsterInstance:
    dagster_home.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(PROJECT_ROOT / "dagster.yaml", dagster_home / "dagster.yaml")
    return dg.DagsterInstance.from_config(str(dagster_home))


def _range(keys: list[str]) -> dict[str, str]:
    return {"dagster/asset_partition_range_start": keys[0],
            "dagster/asset_partition_range_end": keys[-1]}


@pytest.fixture(scope="module")
def graph(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Graph]:
    """The whole graph materialized on data/: the ingest job, then windows and every report
    partition in one run (as `storemon up` does on a new state)."""
    assert SAMPLE_POLLS.exists(), "the sample data in data/ is missing"
    settings = Settings(home=tmp_path_factory.mktemp("state"))
    settings.ensure_dirs()
    defs = dg.Definitions.merge(build_defs(settings), dg.Definitions(jobs=[checks_job]))
    with _new_instance(settings.dagster_home) as instance:
        ingest = defs.resolve_job_def("ingest_job").execute_in_process(instance=instance)
        partitions = instance.get_dynamic_partitions(report_partitions.name)
        report = defs.resolve_job_def("refresh_job").execute_in_process(
            instance=instance, tags=_range(partitions)
        )
        con = duckdb.connect(str(settings.duckdb_path), read_only=True)
        try:
            latest_poll, stores = con.execute(
                "SELECT max(ts), count(DISTINCT store_key) FROM polls"
            ).fetchone()
            rejected = con.execute("SELECT count(*) FROM quarantine").fetchone()[0]
        finally:
            con.close()
        yield Graph(
            settings, defs, instance, ingest, report, partitions,
            latest_report_partition_key(settings.state_dir, settings.duckdb_path, 30),
            latest_poll, stores, rejected,
        )


def _checks(result: dg.ExecuteInProcessResult) -> dict[str, dg.AssetCheckEvaluation]:
    """The evaluation of each check for the run as a whole (or its only partition)."""
    evaluations = result.get_asset_check_evaluations()
    whole = {e.check_name: e for e in evaluations if e.partition is None}
    return whole or {e.check_name: e for e in evaluations}


def _materializations(result: dg.ExecuteInProcessResult) -> dict[str, dict]:
    return {
        e.asset_key.to_user_string(): e.materialization.metadata
        for e in result.get_asset_materialization_events()
    }


# --- the graph on the sample data --------------------------------------------------------------


def test_partitions_are_the_hours_that_hold_polls(graph: Graph) -> None:
    with graph.con() as con:
        hours = poll_hours(con)
    assert graph.partitions == [partition_key(hour) for hour in hours]
    assert 190 <= len(graph.partitions) <= 194  # 2023-01-18 .. 2023-01-25, hourly
    assert graph.partitions[0] == "2023-01-18-00:00" and graph.partitions[-1] == graph.partition
    materialized = graph.instance.get_materialized_partitions(uptime_report.key)
    assert materialized == set(graph.partitions)


def test_whole_graph_materialized_in_one_run_with_checks_passing(graph: Graph) -> None:
    assert graph.ingest.success and graph.report.success
    materialized = _materializations(graph.ingest) | _materializations(graph.report)
    assert set(materialized) == {
        "polls", "business_hours", "special_hours", "timezones", "quarantine", "sla_days",
        "store_alerts", "business_windows", "uptime_report",
    }
    report_events = [
        e for e in graph.report.get_asset_materialization_events()
        if e.asset_key == uptime_report.key
    ]
    assert sorted(e.materialization.partition for e in report_events) == graph.partitions
    evaluations = graph.report.get_asset_check_evaluations()
    per_partition = [e for e in evaluations if e.partition is not None]
    assert len(per_partition) == 4 * len(graph.partitions)
    assert {e.partition for e in per_partition} == set(graph.partitions)
    checks = _checks(graph.ingest) | _checks(graph.report)
    assert set(checks) == {
        "rejected_rows_share", "files_recognised", "uptime_plus_downtime_is_business_time",
        "values_within_period", "one_row_per_store_with_polls", "polls_fresh",
        "alert_deliveries_alive", "settled_days_are_the_polls",
    }
    failing = {name: c.description for name, c in checks.items() if not c.passed}
    assert not failing
    assert all(e.passed for e in per_partition)

    polls = materialized["polls"]
    assert polls["latest_report_partition"].value == graph.partition
    assert graph.partition == partition_key(graph.latest_poll)
    assert graph.partition.startswith("2023-01-25-")
    assert polls["dagster/row_count"].value > 100_000
    assert polls["stores"].value == graph.stores
    assert polls["new_report_partitions"].value == len(graph.partitions)
    special = materialized["special_hours"]  # data/special_hours.csv: Lunar New Year and more
    assert special["stores"].value >= 10
    assert 0 < special["closed_store_dates"].value < special["store_dates"].value
    assert special["first_date"].value <= "2023-01-22" <= special["last_date"].value
    assert "| date |" in special["next_special_dates"].value
    quarantine = materialized["quarantine"]
    assert graph.rejected > 0  # data/store_status_bad_rows.csv
    assert quarantine["rows_rejected"].value == graph.rejected
    assert sum(quarantine["rejected_by_reason"].value.values()) == graph.rejected
    windows = materialized["business_windows"]  # stored for the reports to read
    assert "rebuilt" in windows and windows["dagster/row_count"].value > 0
    with graph.con() as con:
        (stores_through,) = con.execute(
            "SELECT stores_through FROM business_windows_span"
        ).fetchone()
        assert stores_through == con.execute("SELECT max(store_key) FROM stores").fetchone()[0]

    alerts = materialized["store_alerts"]  # the first evaluation: the stores down at the end
    with graph.con() as con:
        stored = read_alerts(con)
    assert len(stored) == alerts["open_alerts"].value == alerts["opened"].value > 0
    assert set(stored["state"]) == {"open"}
    assert (stored["business_minutes_down"] >= 30).all()
    assert alerts["deliveries_pending"].value == len(stored)  # no webhook: they wait
    assert (alerts["deliveries_dead"].value, alerts["webhooks"].value) == (0, 0)
    assert alerts["as_of"].value == graph.latest_poll.replace(tzinfo=UTC).timestamp()

    settled = materialized["sla_days"]  # the sample's days from Jan 1 (its first poll's month)
    assert settled["stores_settled"].value == graph.stores
    assert settled["store_days_settled"].value == settled["settled_store_days"].value
    assert settled["store_days_settled"].value > 20 * graph.stores
    assert (settled["first_date"].value, settled["last_date"].value) == (
        "2023-01-01", "2023-01-24")
    assert checks["settled_days_are_the_polls"].metadata["store_days"].value >= 3 * 150

    report = materialized["uptime_report"]
    assert report["partitions"].value == len(graph.partitions)
    assert report["last_partition"].value == graph.partition
    assert report["stores"].value == graph.stores
    assert report["history_rows"].value > 100 * graph.stores
    assert "| store_id |" in report["most_downtime_last_week"].value
    assert Path(report["csv"].value) == graph.settings.reports_dir / f"{graph.report.run_id}.csv"


def test_each_partition_equals_storemon_report(
    graph: Graph, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The run's CSV (its newest partition) is byte-identical to `storemon report` for the same
    as-of; the history rows of any partition are the engine's unrounded values of the report as
    of that partition's as-of, computed alone: the one pass over many instants changes
    nothing."""
    run_id = graph.report.run_id
    sidecar = read_report_sidecar(graph.settings.reports_dir, run_id)
    assert sidecar is not None
    assert sidecar["partition"] == graph.partition and sidecar["stores"] == graph.stores
    as_of = parse_iso(sidecar["as_of"])
    assert as_of == graph.latest_poll

    monkeypatch.setenv("STOREMON_HOME", str(graph.settings.state_dir))
    out = tmp_path / "cli.csv"
    assert storemon_main(["report", "--as-of", sidecar["as_of"], "--out", str(out)]) == 0
    run_csv = graph.settings.reports_dir / f"{run_id}.csv"
    assert run_csv.read_bytes() == out.read_bytes()

    for key in (graph.partition, graph.partitions[0], "2023-01-21-13:00", "2023-01-24-00:00"):
        hour = datetime.strptime(key, "%Y-%m-%d-%H:%M")
        with graph.con(read_only=False) as con:
            stored = con.execute(
                "SELECT * EXCLUDE (partition_hour) FROM history.uptime_report "
                "WHERE partition_hour = ? ORDER BY store_id",
                [hour],
            ).df()
            key_as_of = stored["as_of"].iloc[0].to_pydatetime()
            assert key_as_of == min(hour + timedelta(hours=1), graph.latest_poll)
            engine = report_frame(con, key_as_of)
        assert list(stored["store_id"]) == list(engine["store_id"])
        for period, unit in (("hour", 60e6), ("day", 3600e6), ("week", 3600e6)):
            uptime = stored[f"uptime_{period}_us"] / unit
            downtime = (stored[f"business_{period}_us"] - stored[f"uptime_{period}_us"]) / unit
            assert (uptime - engine[f"uptime_last_{period}"]).abs().max() < 1e-9
            assert (downtime - engine[f"downtime_last_{period}"]).abs().max() < 1e-9


def _report_rows(path: Path) -> dict[str, list[str]]:
    with open(path, newline="") as handle:
        return {row[0]: row[1:] for row in list(csv.reader(handle))[1:]}


def test_storemon_history_reads_the_partitions(
    graph: Graph, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    """`storemon history STORE` prints the store's row of every partition: the values of the
    report CSV as of that partition's as-of."""
    monkeypatch.setenv("STOREMON_HOME", str(graph.settings.state_dir))
    with graph.con() as con:
        store = con.execute("SELECT min(store_id) FROM stores").fetchone()[0]
    capsys.readouterr()
    assert storemon_main(["history", store]) == 0
    printed = list(csv.reader(capsys.readouterr().out.splitlines()))
    assert printed[0] == ["partition", "as_of", *CSV_VALUES]
    by_partition = {row[0]: row for row in printed[1:]}
    assert list(by_partition) == graph.partitions
    for key in ("2023-01-20-07:00", graph.partition):
        as_of = by_partition[key][1].removesuffix(" UTC")
        out = tmp_path / f"{key}.csv"
        assert storemon_main(["report", "--as-of", as_of, "--out", str(out)]) == 0
        assert by_partition[key][2:] == _report_rows(out)[store]
    # a window of as-of instants
    capsys.readouterr()
    assert storemon_main(["history", store, "--from", "2023-01-24T00:00:00Z",
                          "--to", "2023-01-24T05:30:00Z"]) == 0
    window = list(csv.reader(capsys.readouterr().out.splitlines()))[1:]
    assert [row[0] for row in window] == [f"2023-01-23-{h}:00" for h in ("23",)] + [
        f"2023-01-24-0{h}:00" for h in range(5)]
    # an unknown store, an id the ingest would reject
    assert storemon_main(["history", "no-such-store"]) == 1
    assert "no report partition holds store no-such-store" in capsys.readouterr().err
    assert storemon_main(["history", "bad id!"]) == 2


def test_history_endpoint_reads_the_partitions(graph: Graph) -> None:
    from storemon_api.main import create_app

    with warnings.catch_warnings():  # Starlette's note about its httpx-based client, not ours
        warnings.simplefilter("ignore")
        from fastapi.testclient import TestClient

    with graph.con() as con:
        store = con.execute("SELECT max(store_id) FROM stores").fetchone()[0]
    with TestClient(create_app(state=graph.settings)) as client:
        answer = client.get(f"/stores/{store}/history")
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert body["store_id"] == store
        assert [row["partition"] for row in body["rows"]] == graph.partitions
        newest = body["rows"][-1]
        assert newest["as_of"].startswith(graph.latest_poll.isoformat())
        csv_row = _report_rows(graph.settings.reports_dir / f"{graph.report.run_id}.csv")[store]
        assert [newest[name] for name in CSV_VALUES] == [float(v) for v in csv_row]
        since = client.get(f"/stores/{store}/history", params={"from": "2023-01-25T00:00:00Z"})
        assert all(r["as_of"] >= "2023-01-25" for r in since.json()["rows"])
        assert len(since.json()["rows"]) == 25  # 2023-01-24-23:00 is as of 2023-01-25 00:00
        assert client.get("/stores/no-such-store/history").status_code == 404
        bad = client.get("/stores/bad%20id!/history")
        assert bad.status_code == 422 and "store_id" in bad.json()["detail"]


def test_one_partition_run_as_the_api_launches_it(graph: Graph) -> None:
    older = graph.run("uptime_report_job", partition_key="2023-01-22-10:00")
    assert older.success
    sidecar = read_report_sidecar(graph.settings.reports_dir, older.run_id)
    assert parse_iso(sidecar["as_of"]) == datetime(2023, 1, 22, 11)  # the end of its hour
    assert sidecar["partition"] == "2023-01-22-10:00"
    metadata = _materializations(older)["uptime_report"]
    assert metadata["as_of"].value == datetime(2023, 1, 22, 11, tzinfo=UTC).timestamp()
    checks = _checks(older)
    assert len(checks) == 4 and all(c.passed for c in checks.values())
    assert {e.partition for e in older.get_asset_check_evaluations()} == {"2023-01-22-10:00"}
    # an hour after the data holds no poll: it has no partition
    assert not graph.instance.has_dynamic_partition(report_partitions.name, "2023-01-27-05:00")


def test_schedule_requests_the_hour_that_ended_if_it_holds_polls(graph: Graph) -> None:
    def tick(hour: datetime):
        context = dg.build_schedule_context(
            instance=graph.instance, scheduled_execution_time=hour.replace(tzinfo=UTC)
        )
        return hourly_uptime_report(context)

    request = tick(datetime(2023, 1, 25, 10, 5))
    assert request.partition_key == "2023-01-25-09:00"
    assert request.tags == trigger_tags("schedule")
    skipped = tick(datetime(2023, 2, 25, 10, 5))
    assert isinstance(skipped, dg.SkipReason) and "no polls in hour" in skipped.skip_message
    assert hourly_uptime_report.default_status == dg.DefaultScheduleStatus.STOPPED


def test_report_run_waits_while_another_process_writes(graph: Graph) -> None:
    """DuckDB admits one writing process: a run finding the file held waits for it."""
    with held_open(graph.settings.duckdb_path, seconds=3) as holder:
        started = time.monotonic()
        result = graph.run("uptime_report_job", partition_key="2023-01-23-08:00")
        assert result.success
        assert time.monotonic() - started > 1.5  # it did wait for the holder
        assert holder.wait(30) == 0


def test_report_checks_read_the_history_beside_another_reader(graph: Graph) -> None:
    """With the Celery executor a run's checks evaluate side by side on workers of their own
    (at 100x each reads the history for up to a minute): none may hold it for writing."""
    partition = "2023-01-24-15:00"
    assert graph.run("uptime_report_job", partition_key=partition).success
    with held_open(graph.settings.history_path, read_only=True) as holder:
        result = graph.run(
            "uptime_report_checks_job", tags={"dagster/partition": partition},
            raise_on_error=False,
        )
        assert holder.poll() is None  # the other reader was there all along
    assert result.success
    checks = _checks(result)
    assert len(checks) == 4 and all(check.passed for check in checks.values())


# --- checks on corrupted data ------------------------------------------------------------------


def test_report_checks_fail_on_corrupted_rows(graph: Graph) -> None:
    partition = "2023-01-21-05:00"
    assert graph.run("uptime_report_job", partition_key=partition).success
    hour = datetime(2023, 1, 21, 5)
    with graph.con(read_only=False) as con:
        victims = [
            row[0]
            for row in con.execute(
                "SELECT store_id FROM history.uptime_report WHERE partition_hour = ? "
                "AND uptime_week_us > 0 ORDER BY store_id LIMIT 2",
                [hour],
            ).fetchall()
        ]
        con.execute(  # 200 hours more business time than the week has
            "UPDATE history.uptime_report SET business_week_us = business_week_us + 720000000000 "
            "WHERE partition_hour = ? AND store_id = ?",
            [hour, victims[0]],
        )
        con.execute(
            "DELETE FROM history.uptime_report WHERE partition_hour = ? AND store_id = ?",
            [hour, victims[1]],
        )
    result = graph.run(
        "uptime_report_checks_job", tags={"dagster/partition": partition}, raise_on_error=False
    )
    assert not result.success  # the checks are blocking
    checks = _checks(result)
    assert not checks["values_within_period"].passed
    assert checks["values_within_period"].description.startswith(
        f"1 of {graph.stores - 1} stores have a value outside [0, period]"
    )
    adds_up = checks["uptime_plus_downtime_is_business_time"]
    assert not adds_up.passed
    assert adds_up.description.startswith(f"1 of {graph.stores - 1} stores: uptime + downtime")
    assert adds_up.description.endswith("(worst 720000.000 s)")
    assert not checks["one_row_per_store_with_polls"].passed
    assert checks["one_row_per_store_with_polls"].description == (
        f"1 store(s) with polls missing, e.g. ['{victims[1]}']"
    )
    assert checks["polls_fresh"].passed
    # the checks of the other partitions were not touched
    assert all(c.passed for c in graph.report.get_asset_check_evaluations())
    # the partition's report made again: its checks pass
    assert graph.run("uptime_report_job", partition_key=partition).success


def test_a_report_that_breaks_a_check_fails_its_run(
    graph: Graph, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The invariants are blocking checks: a materialization whose rows break one (a fault
    injected after the engine saved them) ends in a failed run, the check's evaluation says what
    it found, and the run's report is withheld; over many partitions the run's result names the
    failing one. Made again without the fault, the partitions pass."""
    from support.faults import corrupting, saver_of

    import storemon_pipeline.defs.assets as assets

    saver = saver_of(assets)
    monkeypatch.setattr(assets, saver, corrupting(getattr(assets, saver)))
    partition = "2023-01-20-03:00"
    result = graph.run("uptime_report_job", partition_key=partition, raise_on_error=False)
    assert not result.success
    checks = _checks(result)
    failed = {name for name, c in checks.items() if not c.passed}
    assert failed == {"values_within_period", "uptime_plus_downtime_is_business_time"}
    assert checks["values_within_period"].description.startswith(
        f"1 of {graph.stores} stores have a value outside [0, period]"
    )
    failures = [e for e in result.all_events if e.is_step_failure]
    assert {e.step_key for e in failures} == {
        "uptime_report_values_within_period", "uptime_report_uptime_plus_downtime_is_business_time"
    }
    assert all(
        e.step_failure_data.error.cls_name == "DagsterAssetCheckFailedError" for e in failures
    )
    reports = graph.settings.reports_dir
    assert (reports / f"{result.run_id}.csv").exists()
    assert not (reports / f"{result.run_id}.json").exists()  # withheld: never served
    withheld = read_withheld_report(reports, result.run_id)
    assert {f["check"] for f in withheld["failed_checks"]} == failed
    assert withheld["partition"] == partition
    # nor is the broken partition shown as history, for a store or the fleet
    history = graph.settings.history_path
    store = _history_store(history)
    assert partition_hour(partition) not in _store_partitions(history, store)
    assert partition_hour(partition) not in set(read_fleet_history(history).partition_hour)

    # a range: the run's own evaluation names the failing partition and what it found
    keys = ["2023-01-20-02:00", partition]
    ranged = graph.run("refresh_job", tags=_range(keys), raise_on_error=False)
    assert not ranged.success
    whole = _checks(ranged)["values_within_period"]
    assert whole.description.startswith(f"2 partitions checked, 1 failing ({partition}; ")
    assert "stores have a value outside [0, period]" in whole.description

    monkeypatch.undo()
    assert graph.run("refresh_job", tags=_range(keys)).success
    assert partition_hour(partition) in _store_partitions(history, store)


def _history_store(history: Path) -> str:
    """A store the history holds rows of."""
    with duckdb.connect(str(history), read_only=True) as con:
        return con.execute("SELECT min(store_id) FROM uptime_report").fetchone()[0]


def _store_partitions(history: Path, store: str) -> set[datetime]:
    rows = read_store_history(history, store).rows
    return {ts.to_pydatetime() for ts in rows.partition_hour}


def test_ingest_checks_warn_on_rejected_rows_and_unknown_files(
    graph: Graph, tmp_path: Path
) -> None:
    with graph.con() as con:
        store, ts = con.execute(
            "SELECT store_id, strftime(ts, '%Y-%m-%d %H:%M:%S.%f UTC') "
            "FROM polls JOIN stores USING (store_key) ORDER BY ts LIMIT 1"
        ).fetchone()
    bad = tmp_path / "mostly_bad.csv"
    bad.write_text(
        "store_id,status,timestamp_utc\n"
        f"{store},active,{ts}\n"  # already stored: a duplicate
        f"{store},maybe,2023-01-24 10:06:00 UTC\n"
        f"{store},active,not a time\n"
    )
    unknown = tmp_path / "menu.csv"
    unknown.write_text("item,price\nsoup,3\n")
    result = graph.run(
        "ingest_job",
        run_config={"ops": {"ingest": {"config": {"paths": [str(bad), str(unknown)]}}}},
    )
    assert result.success  # bad input never aborts a load
    checks = _checks(result)
    share = checks["rejected_rows_share"]
    assert not share.passed and share.severity == dg.AssetCheckSeverity.WARN
    assert share.description.startswith("2 of 3 rows read were rejected (66.67%")
    recognised = checks["files_recognised"]
    assert not recognised.passed and recognised.severity == dg.AssetCheckSeverity.WARN
    assert "menu.csv: refused" in recognised.description
    quarantine = _materializations(result)["quarantine"]
    assert quarantine["rejected_by_reason"].value == {
        "polls: invalid_status": 1, "polls: invalid_timestamp": 1
    }
    assert "not a time" in quarantine["rejected_rows_sample"].value


def test_delivery_sensor_posts_the_due_events_and_dead_ones_warn(
    graph: Graph, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The alert_deliveries sensor, evaluated as the daemon does, posts the open alerts' events
    to a real receiver; an event given up (dead) makes the store_alerts check warn."""
    sensor = graph.defs.resolve_sensor_def("alert_deliveries")
    resources = {"storemon": StoremonState.from_settings(graph.settings)}
    with dg.build_sensor_context(instance=graph.instance, resources=resources) as context:
        skipped = sensor.evaluate_tick(context)
    assert "no webhook is set" in skipped.skip_message
    with graph.con() as con:
        pending = con.execute(
            "SELECT count(*) FROM alert_outbox WHERE delivered_at IS NULL"
        ).fetchone()[0]
    assert pending > 0
    with running_receiver() as receiver:
        monkeypatch.setenv("STOREMON_ALERT_WEBHOOK_URLS", receiver.url)
        with dg.build_sensor_context(instance=graph.instance, resources=resources) as context:
            tick = sensor.evaluate_tick(context)
        assert not tick.run_requests
        assert tick.skip_message.startswith(f"posted {min(pending, 500)}, delivered ")
        assert len(receiver.accepted_by_key()) == min(pending, 500)
    with graph.con(read_only=False) as con:
        con.execute("UPDATE alert_outbox SET dead_at = now() WHERE event_key = "
                    "(SELECT min(event_key) FROM alert_outbox)")
    result = graph.run("ingest_job", run_config={"ops": {"ingest": {"config": {"paths": []}}}})
    check = _checks(result)["alert_deliveries_alive"]
    assert not check.passed and check.severity == dg.AssetCheckSeverity.WARN
    assert check.description.startswith("1 alert event(s) given up undelivered")
    with graph.con(read_only=False) as con:
        con.execute("UPDATE alert_outbox SET dead_at = NULL")


def test_sharded_ingest_declares_the_same_checks(tmp_path: Path) -> None:
    """With shards the ingest is a graph of steps; its checks are still asset checks of the
    quarantine, evaluated in the run, not just words in metadata."""
    settings = Settings(home=tmp_path / "state", shards=2)
    settings.ensure_dirs()
    feed = tmp_path / "feed.csv"
    feed.write_text(
        "store_id,status,timestamp_utc\n"
        "a1,active,2023-01-24 10:06:00 UTC\n"
        "b2,inactive,2023-01-24 10:07:00.5 UTC\n"
        "b2,maybe,2023-01-24 11:06:00 UTC\n"
    )
    unknown = tmp_path / "menu.csv"
    unknown.write_text("item,price\nsoup,3\n")
    defs = build_defs(settings)
    with _new_instance(settings.dagster_home) as instance:
        result = defs.resolve_job_def("ingest_job").execute_in_process(
            instance=instance,
            run_config={"ops": {"ingest": {"config": {"paths": [str(feed), str(unknown)]}}}},
        )
        assert result.success
        checks = _checks(result)
        assert set(checks) == {"rejected_rows_share", "files_recognised"}
        assert not checks["rejected_rows_share"].passed
        assert checks["rejected_rows_share"].description.startswith("1 of 3 rows read")
        assert "menu.csv: refused" in checks["files_recognised"].description
        assert {e.asset_key for e in result.get_asset_check_evaluations()} == {
            dg.AssetKey("quarantine")
        }
        assert _materializations(result)["polls"]["rows_loaded"].value == 2


# --- the sensors -------------------------------------------------------------------------------


def _write(path: Path, text: str, age_seconds: float = 30) -> None:
    """Write a file as if it had landed a while ago (the sensor lets fresh files settle)."""
    path.write_text(text)
    then = time.time() - age_seconds
    os.utime(path, (then, then))


def test_incoming_sensor_requests_each_content_once(
    graph: Graph, tmp_path_factory: pytest.TempPathFactory
) -> None:
    settings = Settings(home=tmp_path_factory.mktemp("sensor_state"))
    settings.ensure_dirs()
    defs = build_defs(settings)
    storemon = StoremonState.from_settings(settings)

    def evaluate(cursor: str | None) -> dg.SensorResult:
        context = dg.build_sensor_context(
            instance=graph.instance, cursor=cursor, resources={"storemon": storemon}
        )
        return defs.resolve_sensor_def("incoming_files")(context)

    first = evaluate(None)
    assert not first.run_requests

    header = "store_id,status,timestamp_utc\n"
    new_file = settings.incoming_dir / "polls_2023-01-26.csv"
    _write(new_file, header + "sensor-store,active,2023-01-26 00:30:00 UTC\n")
    result = evaluate(first.cursor)
    assert len(result.run_requests) == 1
    request = result.run_requests[0]
    assert request.job_name in (None, "ingest_job")
    assert trigger_tags("sensor").items() <= request.tags.items()
    assert request.run_config["ops"]["ingest"]["config"]["paths"] == [str(new_file)]

    # the requested run ingests the file and adds the partition of its hour; the follow-up
    # sensor asks for that partition's report
    def run_as_the_daemon_would(request: dg.RunRequest) -> dg.ExecuteInProcessResult:
        return defs.resolve_job_def("ingest_job").execute_in_process(
            instance=graph.instance, run_config=request.run_config,
            tags={**request.tags, "dagster/run_key": request.run_key},
        )

    run = run_as_the_daemon_would(request)
    assert run.success
    polls = _materializations(run)["polls"]
    assert polls["rows_loaded"].value == 1
    assert polls["report_partitions_to_refresh"].value == ["2023-01-26-00:00"]
    assert graph.instance.has_dynamic_partition(report_partitions.name, "2023-01-26-00:00")
    report_after_ingest = defs.resolve_sensor_def("report_after_ingest")
    (follow_up,) = list(report_after_ingest(dg.build_sensor_context(instance=graph.instance)))
    (requested,) = follow_up.run_requests
    assert requested.tags["dagster/partition"] == "2023-01-26-00:00"
    assert trigger_tags("sensor").items() <= requested.tags.items()

    # the same file again: nothing; the same content rewritten (new mtime): nothing
    assert not evaluate(result.cursor).run_requests
    _write(new_file, header + "sensor-store,active,2023-01-26 00:30:00 UTC\n", age_seconds=20)
    again = evaluate(result.cursor)
    assert not again.run_requests
    # a changed file: one run
    _write(new_file, header + "sensor-store,inactive,2023-01-26 00:31:00 UTC\n", age_seconds=10)
    changed = evaluate(again.cursor)
    assert len(changed.run_requests) == 1
    assert changed.run_requests[0].run_key != request.run_key
    # its run fails (killed, say): the next tick asks again, once; then it succeeds
    doomed = changed.run_requests[0]
    killed = graph.instance.create_run_for_job(
        defs.resolve_job_def("ingest_job"), run_config=doomed.run_config,
        tags={**doomed.tags, "dagster/run_key": doomed.run_key},
    )
    graph.instance.report_run_failed(killed, "the run worker was killed")
    retry = evaluate(changed.cursor)
    (retried,) = retry.run_requests
    assert retried.run_key != doomed.run_key and retried.tags["storemon/attempt"] == "1"
    assert retried.run_config == doomed.run_config
    assert run_as_the_daemon_would(retried).success
    assert not evaluate(retry.cursor).run_requests
    # a file still being written is left for the next tick
    (settings.incoming_dir / "landing.csv").write_text(header)
    assert not evaluate(retry.cursor).run_requests

    # while a requested run has not started, new files wait, then go together into one run
    _write(settings.incoming_dir / "polls_b1.csv",
           header + "sensor-store,active,2023-01-26 01:30:00 UTC\n", age_seconds=10)
    asked = evaluate(retry.cursor)
    (queued,) = asked.run_requests
    for number in (2, 3):
        _write(settings.incoming_dir / f"polls_b{number}.csv",
               header + f"sensor-store,active,2023-01-26 0{number}:30:00 UTC\n", age_seconds=10)
    held = evaluate(asked.cursor)
    assert not held.run_requests
    assert "wait for the queued ingest run to start" in str(held.skip_reason)
    assert run_as_the_daemon_would(queued).success
    (batch,) = evaluate(held.cursor).run_requests
    paths = {Path(p).name for p in batch.run_config["ops"]["ingest"]["config"]["paths"]}
    assert {"polls_b2.csv", "polls_b3.csv"} <= paths and "polls_b1.csv" not in paths


# --- `storemon up`: real processes, the run queue, restart -------------------------------------


@pytest.fixture(scope="module")
def up_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("up") / "state"


@pytest.fixture
def up_factory(up_home: Path, tmp_path: Path) -> Iterator:
    started: list[Up] = []

    def start() -> Up:
        service = Up(up_home, tmp_path / f"up{len(started)}.log")
        started.append(service)
        return service

    yield start
    for service in started:
        service.stop()


def _wait_runs(instance: dg.DagsterInstance, run_ids: list[str], timeout: float = 120) -> list:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        records = instance.get_run_records(dg.RunsFilter(run_ids=run_ids))
        if len(records) == len(run_ids) and all(
            r.dagster_run.is_finished for r in records
        ):
            return records
        time.sleep(1)
    raise AssertionError(f"runs not finished: {run_ids}")


def _wait_for_run(instance: dg.DagsterInstance, job: str, after: float, timeout: float = 120):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for record in instance.get_run_records(dg.RunsFilter(job_name=job)):
            if record.create_timestamp.timestamp() > after and record.dagster_run.is_finished:
                return record
        time.sleep(1)
    raise AssertionError(f"no finished {job} run")


def test_up_queue_sensor_and_restart(up_factory, up_home: Path) -> None:
    from dagster_graphql import DagsterGraphQLClient

    up = up_factory()
    first_start = up.wait_ready()
    text = up.text()
    assert "ingesting the sample data" in text and "4 of 4 checks passed" in text
    assert f"http://127.0.0.1:{up.port}" in text
    instance = dg.DagsterInstance.from_config(str(up_home / "dagster"))
    initial_runs = {r.dagster_run.run_id for r in instance.get_run_records()}
    # the ingest run, one run for every report partition, one for the SLA month 2023-01
    assert len(initial_runs) == 3
    partitions = instance.get_dynamic_partitions(report_partitions.name)
    assert len(partitions) > 150
    assert instance.get_materialized_partitions(uptime_report.key) == set(partitions)
    assert instance.get_materialized_partitions(dg.AssetKey("monthly_sla")) == {"2023-01"}
    assert "SLA run" in text and (up_home / "sla" / "month-2023-01.duckdb").exists()

    # Two report runs launched together through the queue: both succeed, one after the other.
    client = DagsterGraphQLClient("127.0.0.1", port_number=up.port)
    latest = latest_report_partition_key(up_home, up_home / "storemon.duckdb", 30)
    assert latest == partition_key(read_latest_poll(up_home))
    submitted = time.monotonic()
    run_ids = [
        client.submit_job_execution("uptime_report_job", tags={"dagster/partition": partition})
        for partition in (latest, "2023-01-24-12:00")
    ]
    records = _wait_runs(instance, run_ids)
    queued_seconds = time.monotonic() - submitted
    assert [r.dagster_run.status for r in records] == [dg.DagsterRunStatus.SUCCESS] * 2, [
        client.get_run_status(run_id) for run_id in run_ids
    ]
    first, second = sorted(records, key=lambda r: r.start_time)
    assert first.end_time <= second.start_time  # the pool serialised them
    for run_id in run_ids:
        assert (up_home / "reports" / f"{run_id}.csv").exists()
        assert (up_home / "reports" / f"{run_id}.json").exists()
        retries = instance.get_records_for_run(
            run_id, of_type=dg.DagsterEventType.STEP_UP_FOR_RETRY
        ).records
        assert not retries

    # The daemon's sensors: a new file in incoming/ is ingested, then the report partitions it
    # changed are redone in one run: the new hour's, and the previous latest hour's.
    before = time.time()
    new_file = up_home / "incoming" / "polls_next.csv"
    _write(new_file, "store_id,status,timestamp_utc\nup-store,active,2023-01-26 01:10:00 UTC\n")
    ingest = _wait_for_run(instance, "ingest_job", before)
    assert ingest.dagster_run.status == dg.DagsterRunStatus.SUCCESS
    assert ingest.dagster_run.tags["storemon/trigger"] == "sensor"
    refresh = _wait_for_run(instance, "refresh_job", before)
    assert refresh.dagster_run.status == dg.DagsterRunStatus.SUCCESS
    assert refresh.dagster_run.tags["dagster/asset_partition_range_start"] == latest
    assert refresh.dagster_run.tags["dagster/asset_partition_range_end"] == "2023-01-26-01:00"
    assert json.loads((up_home / "reports" / f"{refresh.dagster_run.run_id}.json").read_text())[
        "as_of"
    ].startswith("2023-01-26T01:10:00")
    runs_before_stop = {r.dagster_run.run_id for r in instance.get_run_records()}

    assert up.stop() == 0
    assert "storemon up: stopped" in up.text()

    # Restart: nothing is redone, everything is still there.
    again = up_factory()
    second_start = again.wait_ready()
    assert "every report partition is materialized" in again.text()
    assert "every SLA month is materialized" in again.text()
    assert "ingesting" not in again.text()
    assert runs_before_stop <= {r.dagster_run.run_id for r in instance.get_run_records()}
    for run_id in run_ids:
        assert (up_home / "reports" / f"{run_id}.csv").exists()
    assert DagsterGraphQLClient("127.0.0.1", port_number=again.port).get_run_status(
        run_ids[0]
    ) == dg.DagsterRunStatus.SUCCESS
    assert again.stop() == 0
    print(
        f"storemon up: first start {first_start:.1f} s, restart {second_start:.1f} s; "
        f"two queued report runs finished {queued_seconds:.1f} s after submission"
    )


def test_api_reports_are_dequeued_before_earlier_sensor_runs(up_factory, up_home: Path) -> None:
    """The queue is held (the duckdb pool has no slot) while a sensor's report run and then an
    API report are queued; given a slot, Dagster's queued run coordinator starts the API's first
    (dagster/priority), and the sensor's after it, in the one slot."""
    from dagster_graphql import DagsterGraphQLClient

    from storemon_api.dagster_client import API_RUN_TAGS, DagsterClient
    from storemon_pipeline.defs.assets import DUCKDB_POOL

    up = up_factory()
    up.wait_ready()
    instance = dg.DagsterInstance.from_config(str(up_home / "dagster"))
    partition = latest_report_partition_key(up_home, up_home / "storemon.duckdb", 30)
    url = f"http://127.0.0.1:{up.port}"
    instance.event_log_storage.set_concurrency_slots(DUCKDB_POOL, 0)
    try:
        sensor_run = DagsterGraphQLClient("127.0.0.1", port_number=up.port).submit_job_execution(
            "refresh_job", tags={"dagster/partition": partition, **trigger_tags("sensor")}
        )
        api = DagsterClient(url, timeout=30, report_job="uptime_report_job")
        try:
            api_run = api.launch_report(partition, tags=API_RUN_TAGS)
        finally:
            api.close()
        time.sleep(5)  # several dequeue intervals: both wait
        runs = [instance.get_run_by_id(run_id) for run_id in (sensor_run, api_run)]
        assert [run.status for run in runs] == [dg.DagsterRunStatus.QUEUED] * 2
        assert [run.tags["storemon/trigger"] for run in runs] == ["sensor", "api"]
    finally:
        instance.event_log_storage.set_concurrency_slots(DUCKDB_POOL, 1)
    records = {r.dagster_run.run_id: r for r in _wait_runs(instance, [sensor_run, api_run])}
    assert {r.dagster_run.status for r in records.values()} == {dg.DagsterRunStatus.SUCCESS}
    assert records[api_run].end_time <= records[sensor_run].start_time
    assert up.stop() == 0
