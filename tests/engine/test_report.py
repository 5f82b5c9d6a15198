"""The report on the sample data: shard consistency, order independence, as-of semantics and
the exact CSV format."""

from __future__ import annotations

import csv
import gzip
import random
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from storemon_pipeline.engine.db import connect
from storemon_pipeline.engine.ingest import ingest_paths
from storemon_pipeline.engine.report import REPORT_COLUMNS, write_report_csv
from storemon_pipeline.settings import SAMPLE_DATA_DIR

POLLS_FILE = SAMPLE_DATA_DIR / "store_status.csv.gz"
# The sample's files but its polls: copied beside the polls a test writes itself
BESIDE_POLLS = ("menu_hours.csv", "special_hours.csv", "timezones.csv", "store_status_bad_rows.csv")


@pytest.fixture(scope="module")
def sample(tmp_path_factory):
    """The sample data ingested once, and its full report as of the latest poll."""
    folder = tmp_path_factory.mktemp("sample")
    con = connect(folder / "storemon.duckdb")
    ingest_paths(con, [SAMPLE_DATA_DIR])
    written = write_report_csv(con, folder / "full.csv")
    yield con, written
    con.close()


def read_rows(path: Path) -> list[list[str]]:
    with open(path, newline="") as handle:
        return list(csv.reader(handle))


def test_csv_format_is_exactly_the_spec(sample):
    con, written = sample
    rows = read_rows(written.path)
    assert rows[0] == REPORT_COLUMNS
    body = rows[1:]
    assert len(body) == written.stores == con.execute(
        "SELECT count(DISTINCT store_key) FROM polls"
    ).fetchall()[0][0]
    ids = [row[0] for row in body]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    for row in body:
        for value in row[1:]:
            whole, _, decimals = value.partition(".")
            assert whole.isdigit() and len(decimals) == 2, row
        hour_up, day_up, week_up, hour_down, day_down, week_down = map(float, row[1:])
        assert hour_up + hour_down <= 60.01 and day_up + day_down <= 24.01
        assert week_up + week_down <= 168.01
    # the sample has outages: the report is not trivially all-up
    assert any(float(row[6]) > 0 for row in body)
    assert not list(written.path.parent.glob(".*")), "no temporary file is left behind"


def test_a_shard_gives_exactly_its_rows_of_the_full_report(sample, tmp_path):
    con, written = sample
    full = read_rows(written.path)
    shard_ids = sorted(random.Random(7).sample([row[0] for row in full[1:]], 97))
    shard = write_report_csv(con, tmp_path / "shard.csv", as_of=written.as_of,
                             store_ids=shard_ids)
    assert read_rows(shard.path) == [full[0]] + [row for row in full[1:] if row[0] in shard_ids]


def test_shuffled_and_split_files_give_the_same_report(sample, tmp_path):
    _, written = sample
    with gzip.open(POLLS_FILE, "rt", newline="") as handle:
        header, *lines = handle.read().splitlines()
    random.Random(3).shuffle(lines)
    feeds = tmp_path / "feeds"
    feeds.mkdir()
    for part in range(3):
        (feeds / f"polls_{part}.csv").write_text("\n".join([header, *lines[part::3]]) + "\n")
    for name in BESIDE_POLLS:
        shutil.copy(SAMPLE_DATA_DIR / name, feeds / name)
    with connect(tmp_path / "other.duckdb") as con:
        # snapshots first this time, then the poll files in reverse order
        ingest_paths(
            con, [feeds / "timezones.csv", feeds / "special_hours.csv", feeds / "menu_hours.csv"]
        )
        ingest_paths(con, sorted(feeds.glob("*.csv"), reverse=True))
        again = write_report_csv(con, tmp_path / "again.csv")
    assert again.as_of == written.as_of
    assert again.path.read_bytes() == written.path.read_bytes()


def test_polls_after_as_of_never_change_the_report(sample, tmp_path):
    con, written = sample
    as_of = written.as_of - timedelta(hours=30)
    before = write_report_csv(con, tmp_path / "before.csv", as_of=as_of)
    # a copy of the data with every later poll deleted gives the same report
    with connect(tmp_path / "cut.duckdb") as cut:
        ingest_paths(cut, [SAMPLE_DATA_DIR])
        cut.execute("DELETE FROM polls WHERE ts > ?", [as_of])
        after = write_report_csv(cut, tmp_path / "after.csv", as_of=as_of)
    assert before.path.read_bytes() == after.path.read_bytes()
    assert before.stores == con.execute(
        "SELECT count(DISTINCT store_key) FROM polls WHERE ts <= ?", [as_of]
    ).fetchall()[0][0]


def test_new_hours_snapshot_is_used_by_the_next_report(tmp_path):
    polls = tmp_path / "polls.csv"
    polls.write_text("store_id,status,timestamp_utc\ns,active,2023-01-23 15:30:00 UTC\n")
    hours = tmp_path / "hours.csv"
    hours.write_text("store_id,day,start_time_local,end_time_local\ns,0,09:00,10:00\n")
    as_of = datetime(2023, 1, 23, 18)
    with connect(tmp_path / "db.duckdb") as con:
        ingest_paths(con, [polls, hours])
        first = read_rows(write_report_csv(con, tmp_path / "1.csv", as_of=as_of).path)
        hours.write_text("store_id,day,start_time_local,end_time_local\ns,0,09:00,11:00\n")
        ingest_paths(con, [hours])
        second = read_rows(write_report_csv(con, tmp_path / "2.csv", as_of=as_of).path)
    assert first[1][2] == "1.00" and second[1][2] == "2.00"


def test_a_poll_at_the_as_of_instant_opening_a_window_is_in_hours(tmp_path):
    """Found by the oracle: a window that starts exactly at the as-of instant still makes the
    poll at that instant an in-hours poll (and so the nearest for the hour before)."""
    feeds = tmp_path / "feeds"
    feeds.mkdir()
    (feeds / "polls.csv").write_text(
        "store_id,status,timestamp_utc\n"
        "s,inactive,2023-03-07 04:00:00 UTC\n"  # Tuesday 23:00 EST, in hours, a week earlier
        "s,active,2023-03-14 04:30:00 UTC\n"  # Tuesday 00:30 EDT: opens Tuesday's window
    )
    (feeds / "hours.csv").write_text(
        "store_id,day,start_time_local,end_time_local\n"
        "s,0,00:00,00:00\n"  # Monday, 24 hours
        "s,1,00:30,00:30\n"  # Tuesday 00:30 to Wednesday 00:30
    )
    (feeds / "tz.csv").write_text("store_id,timezone_str\ns,America/New_York\n")
    with connect(tmp_path / "db.duckdb") as con:
        ingest_paths(con, [feeds])
        rows = read_rows(write_report_csv(con, tmp_path / "r.csv").path)
    # last hour [Mon 23:30, Tue 00:30) EDT: business until Tue 00:00, nearest poll is the one at T
    assert rows[1][:2] == ["s", "30.00"] and rows[1][4] == "0.00"


def test_stray_polls_far_older_than_the_rest_change_nothing(sample, tmp_path):
    """A feed's stray rows: two valid polls ten months older than the rest, of stores polled
    every hour. The report is the same, byte for byte (and its cost does not follow them: a
    report reads its own week, see docs/semantics.md and engine/report.py)."""
    con, written = sample
    stores = [row[0] for row in read_rows(written.path)[1:3]]
    feeds = tmp_path / "feeds"
    shutil.copytree(SAMPLE_DATA_DIR, feeds)
    (feeds / "stray.csv").write_text(
        "store_id,status,timestamp_utc\n"
        f"{stores[0]},inactive,2022-03-20 10:00:00 UTC\n"
        f"{stores[1]},active,2022-03-21 03:17:12.5 UTC\n"
    )
    with connect(tmp_path / "stray.duckdb") as stray:
        ingest_paths(stray, [feeds])
        assert stray.execute("SELECT min(ts) FROM polls").fetchone()[0].year == 2022
        again = write_report_csv(stray, tmp_path / "stray.csv")
    assert again.path.read_bytes() == written.path.read_bytes()


def test_retention_reports_as_if_the_dropped_polls_never_arrived(sample, tmp_path):
    from storemon_pipeline.engine.ingest import drop_expired_polls
    from storemon_pipeline.engine.report import kept_history

    assert kept_history(30) == timedelta(days=38)  # 30 days, plus a report's look-back
    _, written = sample
    keep = timedelta(days=5)
    cutoff = written.as_of - keep
    with connect(tmp_path / "kept.duckdb") as kept:
        ingest_paths(kept, [SAMPLE_DATA_DIR])
        polls_before = kept.execute("SELECT count(*) FROM polls").fetchone()[0]
        dropped = drop_expired_polls(kept, keep)
        assert dropped == polls_before - kept.execute("SELECT count(*) FROM polls").fetchone()[0]
        assert dropped > 10_000
        assert kept.execute("SELECT min(ts) FROM polls").fetchone()[0] >= cutoff
        assert drop_expired_polls(kept, keep) == 0  # nothing more to drop
        after = write_report_csv(kept, tmp_path / "kept.csv")
    # the same feeds without the dropped polls, loaded into a new database
    with gzip.open(POLLS_FILE, "rt", newline="") as handle:
        header, *lines = handle.read().splitlines()
    def instant(line: str) -> datetime:
        text = line.split(",")[2].strip().removesuffix(" UTC")
        parsed = datetime.fromisoformat(text)
        return parsed.astimezone(UTC).replace(tzinfo=None) if parsed.tzinfo else parsed

    recent = [line for line in lines if instant(line) >= cutoff]
    feeds = tmp_path / "recent"
    feeds.mkdir()
    (feeds / "polls.csv").write_text("\n".join([header, *recent]) + "\n")
    # (the one valid row of the bad-rows file is recent)
    for name in BESIDE_POLLS:
        shutil.copy(SAMPLE_DATA_DIR / name, feeds / name)
    with connect(tmp_path / "never.duckdb") as never:
        ingest_paths(never, [feeds])
        expected = write_report_csv(never, tmp_path / "never.csv")
    assert after.path.read_bytes() == expected.path.read_bytes()


def test_a_week_of_hourly_reports_in_one_pass_equals_each_report(sample):
    """The history of a week (168 hourly as-of instants) is computed in one query; every row
    equals the report computed alone."""
    import pandas as pd

    from storemon_pipeline.engine.report import compute_reports, report_frame, result_frame

    con, written = sample
    end = written.as_of.replace(minute=0, second=0, microsecond=0)
    instants = [end - timedelta(hours=h) for h in range(168)]
    assert compute_reports(con, instants) == sorted(instants)
    batch = {t: result_frame(con, t) for t in instants[::17]}
    assert con.execute("SELECT count(DISTINCT as_of) FROM report_results").fetchone()[0] == 168
    for instant, frame in batch.items():
        pd.testing.assert_frame_equal(frame, report_frame(con, instant))


def test_a_late_poll_older_than_what_a_search_remembered_is_used(tmp_path):
    """A store open one hour a week (Monday 09:00-10:00 UTC) is polled only outside its hours
    lately: its last in-hours poll, weeks back, is found by the search before the look-back and
    remembered. A late delivery brings a nearer in-hours poll, older than where that search
    stopped: the next report must use it (the ingest forgets what the search remembered)."""
    t = datetime(2023, 3, 2, 12)  # a Thursday; its week holds Monday 2023-02-27's hour
    polls = tmp_path / "polls.csv"
    recent = "".join(
        f"s,active,{t - timedelta(days=d):%Y-%m-%d %H:%M:%S} UTC\n" for d in range(12)
    )  # every day at 12:00: never in hours
    polls.write_text(
        "store_id,status,timestamp_utc\n" + recent
        + "s,inactive,2023-02-06 09:30:00 UTC\n"  # in hours, three Mondays back
    )
    hours = tmp_path / "hours.csv"
    hours.write_text("store_id,day,start_time_local,end_time_local\ns,0,09:00,10:00\n")
    zones = tmp_path / "zones.csv"
    zones.write_text("store_id,timezone_str\ns,UTC\n")
    with connect(tmp_path / "db.duckdb") as con:
        ingest_paths(con, [polls, hours, zones])
        first = read_rows(write_report_csv(con, tmp_path / "1.csv", as_of=t).path)
        assert first[1][3] == "0.00" and first[1][6] == "1.00"  # the old poll: down
        assert con.execute("SELECT count(*) FROM search_memo").fetchone()[0] == 1
        late = tmp_path / "late.csv"
        late.write_text(
            "store_id,status,timestamp_utc\ns,active,2023-02-20 09:30:00 UTC\n"  # nearer
        )
        ingest_paths(con, [late])
        assert con.execute("SELECT count(*) FROM search_memo").fetchone()[0] == 0
        second = read_rows(write_report_csv(con, tmp_path / "2.csv", as_of=t).path)
        assert second[1][3] == "1.00" and second[1][6] == "0.00"  # the late poll: up
        # a new hours snapshot makes other polls in-hours: what was remembered is forgotten
        assert con.execute("SELECT count(*) FROM search_memo").fetchone()[0] == 1
        hours.write_text("store_id,day,start_time_local,end_time_local\ns,0,09:00,12:30\n")
        ingest_paths(con, [hours])
        assert con.execute("SELECT count(*) FROM search_memo").fetchone()[0] == 0


def test_a_read_only_reader_computes_the_same_report(sample, tmp_path):
    """A reader that may not write (the REST API explaining a store) computes the same numbers;
    it just does not remember its search."""
    import pandas as pd

    from storemon_pipeline.engine.report import report_frame

    con, written = sample
    expected = report_frame(con, written.as_of)
    con.execute("CHECKPOINT")
    copy = tmp_path / "copy.duckdb"
    shutil.copyfile(written.path.parent / "storemon.duckdb", copy)
    with connect(copy, read_only=True) as reader:
        got = report_frame(reader, written.as_of)
    pd.testing.assert_frame_equal(got, expected)


def test_store_chunks_give_the_same_reports(sample, tmp_path):
    """A report and a day of hourly reports computed in chunks of about 40,000 polls of
    consecutive store keys: the same CSV, byte for byte, and the same rows as in one pass."""
    import pandas as pd

    from storemon_pipeline.engine.report import compute_reports, export_report_csv

    con, written = sample
    instants = [written.as_of - timedelta(hours=h) for h in range(24)]
    compute_reports(con, instants, polls_per_chunk=10**9)
    whole = con.execute("SELECT * FROM report_results ORDER BY as_of, store_id").df()
    compute_reports(con, instants, polls_per_chunk=40_000)
    chunked = con.execute("SELECT * FROM report_results ORDER BY as_of, store_id").df()
    assert len(whole) == 24 * 1500
    pd.testing.assert_frame_equal(chunked, whole)
    compute_reports(con, [written.as_of], polls_per_chunk=40_000)
    export_report_csv(con, tmp_path / "chunked.csv")
    assert (tmp_path / "chunked.csv").read_bytes() == written.path.read_bytes()


def test_chunks_are_sized_from_the_connection_memory_limit(sample):
    """The same stores make more chunks under a lower memory limit, and more for many rows a
    store (a batch of instants) than for one: a chunk's polls and rows take at most
    CHUNK_MEMORY_SHARE of it; a scope of a few stores is one chunk without counting."""
    from storemon_pipeline.engine.chunks import (
        BYTES_PER_CHUNK_POLL,
        BYTES_PER_CHUNK_ROW,
        CHUNK_MEMORY_SHARE,
        store_chunks,
    )
    from storemon_pipeline.engine.report import report_horizon, scope_report_stores

    con, written = sample
    horizon = report_horizon(written.as_of)
    (polls,) = con.execute(
        "SELECT count(*) FROM polls WHERE ts BETWEEN ? AND ?", [horizon, written.as_of]
    ).fetchone()
    stores = con.execute("SELECT count(*) FROM stores").fetchone()[0]
    before = con.execute("SELECT current_setting('memory_limit')").fetchone()[0]
    try:
        counts = {}
        one_chunk_mib = polls * BYTES_PER_CHUNK_POLL / CHUNK_MEMORY_SHARE / 2**20
        for limit_mib in (4096, int(one_chunk_mib / 2), int(one_chunk_mib / 3)):
            con.execute(f"SET memory_limit = '{limit_mib}MiB'")
            budget = limit_mib * 2**20 * CHUNK_MEMORY_SHARE
            for rows in (0, 24):
                scope_report_stores(con, written.as_of, None)
                ranges = list(store_chunks(
                    con, "report_stores", horizon, written.as_of, rows_per_store=rows))
                counts[limit_mib, rows] = len(ranges)
                needed = polls * BYTES_PER_CHUNK_POLL + stores * rows * BYTES_PER_CHUNK_ROW
                assert len(ranges) == max(1, -(-int(needed) // int(budget)))
                assert all(a[1] < b[0] for a, b in zip(ranges, ranges[1:], strict=False))
        assert [counts[limit, 0] for limit in (4096, int(one_chunk_mib / 2),
                                               int(one_chunk_mib / 3))] == [1, 3, 4]
        assert all(counts[limit, 24] > counts[limit, 0] for limit, _ in counts if limit < 4096)
        scope_report_stores(con, written.as_of, ["a-store-that-polls-not", *_some_stores(con)])
        assert len(list(store_chunks(con, "report_stores", horizon, written.as_of))) == 1
    finally:
        con.execute(f"SET memory_limit = '{before}'")


def _some_stores(con) -> list[str]:
    return [row[0] for row in con.execute("SELECT store_id FROM stores LIMIT 20").fetchall()]
