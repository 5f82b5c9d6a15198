"""The business windows kept in the table business_windows (engine/windows.py,
keep_business_windows): reports read them where they cover their span, and get exactly the rows
of windows built for them; nothing makes them read windows that are no longer true."""

from __future__ import annotations

import shutil
from datetime import timedelta
from pathlib import Path

import pytest
from support.windows import SPAN, windows_built

from storemon_pipeline.engine.db import connect
from storemon_pipeline.engine.ingest import drop_expired_polls, ingest_paths
from storemon_pipeline.engine.report import (
    compute_reports,
    keep_latest_windows,
    latest_poll,
    write_report_csv,
)
from storemon_pipeline.engine.windows import LATEST_SPAN_AFTER, LATEST_SPAN_BEFORE
from storemon_pipeline.settings import SAMPLE_DATA_DIR


@pytest.fixture()
def state(tmp_path: Path):
    """The sample ingested, and a connection to it."""
    con = connect(tmp_path / "storemon.duckdb")
    ingest_paths(con, [SAMPLE_DATA_DIR])
    yield con, tmp_path
    con.close()


def _report(con, path: Path, **kwargs) -> bytes:
    return write_report_csv(con, path, **kwargs).path.read_bytes()


def _built(con, path: Path, **kwargs) -> bytes:
    """The report from windows built for it: as if no windows were stored."""
    with windows_built(con) as every_store:
        return write_report_csv(con, path, store_ids=every_store, **kwargs).path.read_bytes()


def test_the_report_of_every_store_stores_the_windows_and_the_next_reads_them(state):
    con, folder = state
    latest = latest_poll(con)
    assert con.execute(SPAN).fetchall() == []
    first = _report(con, folder / "first.csv")
    ((covers_from, covers_to, stores_through),) = con.execute(SPAN).fetchall()
    assert (covers_from, covers_to) == (latest - LATEST_SPAN_BEFORE, latest + LATEST_SPAN_AFTER)
    assert stores_through == con.execute("SELECT max(store_key) FROM stores").fetchone()[0]
    # the same bytes as a report whose windows are built for it
    assert _built(con, folder / "built.csv") == first
    # hours changed behind the engine's back (never done by an ingest: it empties the table)
    # change nothing a report reads from the stored windows: they are read, not built
    con.execute("CREATE TEMP TABLE hours_kept AS FROM business_hours; DELETE FROM business_hours")
    assert _report(con, folder / "second.csv") == first
    con.execute("INSERT INTO business_hours FROM hours_kept")
    # and a report an hour later (the live feed's next one) too
    hour_before = latest - timedelta(hours=1)
    assert _report(con, folder / "hour.csv", as_of=hour_before) == _built(
        con, folder / "hour_built.csv", as_of=hour_before
    )


def test_a_week_of_hourly_reports_ending_at_the_latest_poll_reads_them(state):
    """A backfill of the last week's 168 partitions (its first report's look-back reaches 15
    days back) reads the stored windows, and gets the rows of windows built for it."""
    con, folder = state
    latest = latest_poll(con)
    _report(con, folder / "latest.csv")
    week = [latest - timedelta(hours=hours) for hours in range(168)]
    rows = "SELECT * FROM report_results ORDER BY as_of, store_key"
    compute_reports(con, week)
    from_stored = con.execute(rows).fetchall()
    with windows_built(con) as every_store:
        compute_reports(con, week, every_store)
        assert con.execute(rows).fetchall() == from_stored
    # read, not built: hours deleted behind the engine's back change nothing
    con.execute("DELETE FROM business_hours")
    compute_reports(con, week)
    assert con.execute(rows).fetchall() == from_stored


def test_reports_outside_the_stored_span_build_their_own(state):
    """A report as of a day after the stored span (the sample's polls are too few days for one
    before it) builds its windows, and its rows are those of windows built for it."""
    con, folder = state
    latest = latest_poll(con)
    _report(con, folder / "latest.csv")
    kept = con.execute(SPAN).fetchall()
    as_of = latest + LATEST_SPAN_AFTER + timedelta(days=1)
    older = _report(con, folder / "older.csv", as_of=as_of)
    assert con.execute(SPAN).fetchall() == kept  # not built again for a report outside it
    con.execute("DELETE FROM business_hours")  # a built report would see this
    assert _report(con, folder / "older_again.csv", as_of=as_of) != older


def test_a_new_snapshot_empties_the_stored_windows(state):
    con, folder = state
    _report(con, folder / "before.csv")
    hours = folder / "menu_hours.csv"
    lines = (SAMPLE_DATA_DIR / "menu_hours.csv").read_text().splitlines(keepends=True)
    hours.write_text("".join(lines[:-200]))  # 200 weekly rows fewer: those stores open longer
    ingest_paths(con, [hours])
    assert con.execute(SPAN).fetchall() == []
    after = _report(con, folder / "after.csv")
    assert after != (folder / "before.csv").read_bytes()
    assert _built(con, folder / "after_built.csv") == after


def test_stores_that_arrive_later_get_their_windows_built(state):
    """A store whose first poll comes after the windows were stored has a greater key: the chunk
    holding it builds its windows, the others read theirs."""
    con, folder = state
    latest = latest_poll(con)
    _report(con, folder / "before.csv")
    ((_, _, stores_through),) = con.execute(SPAN).fetchall()
    polls = folder / "new_store.csv"
    stamp = f"{latest:%Y-%m-%d %H:%M:%S} UTC"
    polls.write_text(
        "store_id,status,timestamp_utc\n"
        f"new-store-1,inactive,{stamp}\n"
        f"new-store-2,active,{stamp}\n"
    )
    ingest_paths(con, [polls])
    newest = con.execute("SELECT max(store_key) FROM stores").fetchone()[0]
    assert newest == stores_through + 2
    assert con.execute(SPAN).fetchall()[0][2] == stores_through  # not built again
    with_new = _report(con, folder / "with_new.csv")
    assert b"new-store-1" in with_new and b"new-store-2" in with_new
    assert _built(con, folder / "with_new_built.csv") == with_new


def test_retention_never_lets_a_new_store_take_stored_windows(state):
    """Retention may forget the stores of the greatest keys; a store arriving later takes such a
    key again, so the stored windows then stop below it."""
    con, folder = state
    _report(con, folder / "before.csv")
    newest = con.execute("SELECT max(store_key) FROM stores").fetchone()[0]
    # the newest store's polls made ten years older than the others: retention forgets it
    con.execute("UPDATE polls SET ts = ts - INTERVAL 10 YEAR WHERE store_key = ?", [newest])
    con.execute(
        "UPDATE stores SET first_poll = first_poll - INTERVAL 10 YEAR, "
        "last_poll = last_poll - INTERVAL 10 YEAR WHERE store_key = ?",
        [newest],
    )
    drop_expired_polls(con, timedelta(days=3650))
    assert con.execute("SELECT max(store_key) FROM stores").fetchone()[0] == newest - 1
    assert con.execute(SPAN).fetchall()[0][2] == newest - 1


def test_a_reader_reads_the_stored_windows_and_never_builds_them(state, tmp_path):
    con, folder = state
    expected = _report(con, folder / "writer.csv")
    con.execute("CHECKPOINT")
    copy = tmp_path / "copy" / "storemon.duckdb"
    copy.parent.mkdir()
    shutil.copyfile(folder / "storemon.duckdb", copy)
    with connect(copy, read_only=True) as reader:
        assert _report(reader, copy.parent / "reader.csv") == expected
    # a reader of a state without stored windows builds its own and stores nothing
    con.execute("DELETE FROM business_windows_span; CHECKPOINT")
    shutil.copyfile(folder / "storemon.duckdb", copy)
    with connect(copy, read_only=True) as reader:
        assert _report(reader, copy.parent / "reader2.csv") == expected
        assert reader.execute(SPAN).fetchall() == []


def test_the_windows_asset_builds_only_when_the_span_runs_out(state):
    con, _ = state
    assert keep_latest_windows(con) is True
    assert keep_latest_windows(con) is False
    compute_reports(con, [latest_poll(con)])
    assert keep_latest_windows(con) is False


def test_the_windows_asset_over_shards_shows_them_and_stores_nothing(sample_state, tmp_path):
    """Over a view of the shards (the asset's connection with shards) the windows are built for
    the asset to show; each shard's reports store their own."""
    from storemon_pipeline.engine.shards import reshard, shard_db_paths, union_connection

    home = tmp_path / "state"
    shutil.copytree(sample_state, home)
    reshard(home, 2)
    con = union_connection(shard_db_paths(home, 2))
    try:
        assert keep_latest_windows(con) is True
        shown, stores = con.execute(
            "SELECT count(DISTINCT store_key), (SELECT count(*) FROM stores) FROM business_windows"
        ).fetchone()
    finally:
        con.close()
    assert shown == stores == 1500
    for path in shard_db_paths(home, 2):
        with connect(path, read_only=True) as shard:
            assert shard.execute(SPAN).fetchall() == []
