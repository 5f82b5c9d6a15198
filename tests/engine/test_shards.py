"""Shards (docs/semantics.md §2.14): every store in exactly one shard, the shards' report equal
to the one-file report byte for byte, a re-shard that changes nothing of the reports."""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from pathlib import Path

import duckdb
import pytest
from engine.test_oracle import COMMON, scenarios
from hypothesis import given, settings
from hypothesis import strategies as st
from support.oracle import from_unix, write_feeds

from storemon_pipeline.engine.alerts import evaluate_alerts
from storemon_pipeline.engine.db import database
from storemon_pipeline.engine.history import (
    compute_history,
    partition_as_of,
    partition_hour_of,
    poll_hours,
)
from storemon_pipeline.engine.ingest import STORE_ID_PATTERN, ingest_paths
from storemon_pipeline.engine.report import latest_poll, write_report_csv
from storemon_pipeline.engine.sharded import (
    ShardedState,
    assemble_report,
    ingest_one_after_another,
    newest_poll,
    report_plan,
    report_shard,
    sweep_leftovers,
)
from storemon_pipeline.engine.shards import (
    ShardLayoutError,
    reshard,
    shard_of,
    stored_shards,
)
from storemon_pipeline.settings import SAMPLE_DATA_DIR, Settings

STORE_IDS = st.from_regex(rf"\A{STORE_ID_PATTERN}\Z")


@settings(max_examples=60, deadline=None)
@given(ids=st.lists(STORE_IDS, min_size=1, max_size=40, unique=True), shards=st.integers(1, 7))
def test_the_rule_is_the_same_in_sql_and_python(ids, shards):
    con = duckdb.connect()
    con.execute((SAMPLE_DATA_DIR.parent / "storemon_pipeline/engine/sql/macros.sql").read_text())
    in_sql = con.execute(
        "SELECT shard_of(id, $n) FROM unnest($ids::VARCHAR[]) AS t(id)", {"n": shards, "ids": ids}
    ).fetchall()
    assert [row[0] for row in in_sql] == [shard_of(i, shards) for i in ids]


def sharded_settings(home: Path, shards: int) -> ShardedState:
    return Settings(home=home, shards=shards, lock_wait_seconds=5).sharded


def ingest_sharded(settings: ShardedState, paths: list[Path]):
    results = ingest_one_after_another(settings, paths).results
    assert not list(settings.staging_dir.glob("*/*")), "staged parts are removed once loaded"
    return results


def report_sharded(
    settings: ShardedState, as_of_by_hour, out: Path, run_id: str = "run", save_history: bool = True
):
    files = [
        file for k in range(settings.shards)
        for file in report_shard(settings, k, run_id, as_of_by_hour)
    ]
    return assemble_report(
        settings, run_id, files, as_of_by_hour, out, save_history=save_history
    )


def shard_stores(settings: ShardedState) -> list[set[str]]:
    found = []
    for path in settings.shard_paths:
        with database(path, read_only=True) as con:
            found.append({row[0] for row in con.execute("SELECT store_id FROM stores").fetchall()})
    return found


@settings(max_examples=20, **COMMON)
@given(scenario=scenarios(), shards=st.integers(1, 7), data=st.data())
def test_sharded_report_equals_the_one_file_report(scenario, shards, data):
    """For the oracle's random stores and N in 1..7: every store lands in exactly one shard, the
    one its id names, and the assembled report (CSV and history rows) is the one-file report."""
    stores, t = scenario
    with tempfile.TemporaryDirectory(prefix="storemon-shards-") as folder:
        folder = Path(folder)
        paths = write_feeds(stores, folder / "feeds", poll_files=data.draw(st.integers(1, 3)))
        files = [p for feed in ("polls", "hours", "timezones") for p in paths[feed]]

        with database(folder / "one.duckdb") as con:
            one_results = ingest_paths(con, files)
            newest = latest_poll(con)
            if newest is None:
                return
            hours = poll_hours(con)[-3:]
            as_of_by_hour = {hour: partition_as_of(hour, newest) for hour in hours}
            compute_history(con, folder / "one_history.duckdb", as_of_by_hour)
            write_report_csv(con, folder / "one.csv", from_unix(t).replace(tzinfo=None))
            write_report_csv(con, folder / "one_latest.csv")
            polled = {row[0] for row in con.execute("SELECT store_id FROM stores").fetchall()}

        settings_n = sharded_settings(folder / "state", shards)
        merged = ingest_sharded(settings_n, files)
        assert [(r.status, r.rows_read, r.rows_loaded, r.rows_duplicate, r.rejected)
                for r in merged] == [
            (r.status, r.rows_read, r.rows_loaded, r.rows_duplicate, r.rejected)
            for r in one_results]

        by_shard = shard_stores(settings_n)
        assert set().union(*by_shard) == polled
        for k, ids in enumerate(by_shard):
            assert all(shard_of(i, shards) == k for i in ids)

        assert report_plan(settings_n, hours) == as_of_by_hour
        assembled = report_sharded(settings_n, as_of_by_hour, folder / "n_latest.csv")
        assert assembled.as_of == newest
        assert (folder / "n_latest.csv").read_bytes() == (folder / "one_latest.csv").read_bytes()
        at_t = {hours[-1]: from_unix(t).replace(tzinfo=None)}
        report_sharded(settings_n, at_t, folder / "n.csv", run_id="at-t", save_history=False)
        assert (folder / "n.csv").read_bytes() == (folder / "one.csv").read_bytes()
        assert not list(settings_n.shard_results_dir.glob("**/*.parquet"))

        assert saved_rows(folder / "one_history.duckdb") == saved_rows(settings_n.history_path)


def saved_rows(history_path: Path) -> list[tuple]:
    with database(history_path, read_only=True) as con:
        return con.execute(
            "SELECT * EXCLUDE (computed_at, run_id) FROM uptime_report_partitions ORDER BY ALL"
        ).fetchall() + con.execute("SELECT * FROM uptime_report ORDER BY ALL").fetchall()


def test_reshard_keeps_every_report(sample_state, sample_report_csv, tmp_path):
    """1 -> 4 -> 3 -> 1 shards: the same report each time, the same files known as loaded, the
    same alerts and outbox (each with its own store's key) back in one file."""
    source, expected = sample_state, sample_report_csv
    home = tmp_path / "state"
    shutil.copytree(source, home)
    with database(home / "storemon.duckdb") as con:
        assert evaluate_alerts(con).opened > 0
        con.execute("UPDATE alert_outbox SET attempts = 2, delivered_to = ['http://x/'] "
                    "WHERE event_key = (SELECT min(event_key) FROM alert_outbox)")
        con.execute("INSERT INTO alert_delivery_attempts SELECT min(event_key), 'http://x/', "
                    "TIMESTAMP '2026-12-01 10:00', 200, NULL, 0.01 FROM alert_outbox")
        alerts_before = _alert_rows(con)
    one = sharded_settings(home, 1)
    four = sharded_settings(home, 4)

    with pytest.raises(ShardLayoutError, match="storemon reshard 4"):
        report_plan(four, [])
    assert reshard(home, 4) == 1
    assert stored_shards(home) == 4
    assert not (home / "storemon.duckdb").exists()

    def report(settings: ShardedState, name: str) -> bytes:
        plan = report_plan(settings, [partition_hour_of(newest_poll(settings))])
        report_sharded(settings, plan, tmp_path / name)
        return (tmp_path / name).read_bytes()

    assert report(four, "four.csv") == expected
    again = ingest_sharded(four, [SAMPLE_DATA_DIR])
    assert {r.status for r in again} == {"skipped"}, "a re-shard forgets no loaded file"

    assert reshard(home, 3) == 4
    three = sharded_settings(home, 3)
    assert report(three, "three.csv") == expected
    stores = shard_stores(three)
    assert sum(map(len, stores)) == len(set().union(*stores)) == 1500

    assert reshard(home, 1) == 3
    assert not (home / "shards").exists()
    with database(home / "storemon.duckdb") as con:
        write_report_csv(con, tmp_path / "back.csv")
        assert {r.status for r in ingest_paths(con, [SAMPLE_DATA_DIR])} == {"skipped"}
        assert _alert_rows(con) == alerts_before
    assert (tmp_path / "back.csv").read_bytes() == expected
    assert report(one, "one.csv") == expected


def _alert_rows(con: duckdb.DuckDBPyConnection) -> tuple[list, list, list]:
    """The alerts with their store's id in place of its key (keys are per file), the outbox and
    the posts."""
    alerts = con.execute(
        "SELECT alerts.* EXCLUDE (store_key), stores.store_id = alerts.store_id FROM alerts "
        "JOIN stores USING (store_key) ORDER BY alert_id"
    ).fetchall()
    return alerts, con.execute("SELECT * FROM alert_outbox ORDER BY event_key").fetchall(), \
        con.execute("SELECT * FROM alert_delivery_attempts ORDER BY ALL").fetchall()



def test_leftovers_of_failed_runs_are_swept(sample_state, tmp_path):
    """A run that died between its steps leaves staged parts and shard results: the next ingest
    removes those old enough that no live run can own them, and nothing else."""
    home = tmp_path / "state"
    shutil.copytree(sample_state, home)
    reshard(home, 2)
    two = sharded_settings(home, 2)
    old_stage, old_results = two.staging_dir / "abc", two.shard_results_dir / "dead-run"
    new_results = two.shard_results_dir / "live-run"
    for folder in (old_stage, old_results, new_results):
        folder.mkdir(parents=True)
        (folder / "0.parquet").write_bytes(b"left over")
    a_day_ago = time.time() - 24 * 3600
    for folder in (old_stage, old_results):
        os.utime(folder, (a_day_ago, a_day_ago))

    assert {r.status for r in ingest_sharded(two, [SAMPLE_DATA_DIR])} == {"skipped"}
    assert not old_stage.exists() and not old_results.exists()
    assert (new_results / "0.parquet").exists(), "a folder a live run may own is kept"
    assert sweep_leftovers(two, older_than=0) == [new_results]
