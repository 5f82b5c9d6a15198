"""Ingestion: every bad-input kind of docs/semantics.md §1.3 is quarantined, nothing good is lost,
loads are idempotent and order-independent."""

from __future__ import annotations

import gzip
from datetime import datetime
from pathlib import Path

import pytest

from storemon_pipeline.engine.db import connect
from storemon_pipeline.engine.ingest import ingest_paths
from storemon_pipeline.engine.report import report_frame

POLLS_HEADER = "store_id,status,timestamp_utc"
HOURS_HEADER = "store_id,dayOfWeek,start_time_local,end_time_local"
ZONES_HEADER = "store_id,timezone_str"


def write(path: Path, *lines: str, newline: str = "\n", bom: bool = False) -> Path:
    text = newline.join(lines) + newline
    path.write_bytes((b"\xef\xbb\xbf" if bom else b"") + text.encode())
    return path


@pytest.fixture
def con(tmp_path):
    connection = connect(tmp_path / "storemon.duckdb")
    yield connection
    connection.close()


def rows(con, query: str) -> list[tuple]:
    return con.execute(query).fetchall()


def quarantine(con) -> dict[int, str]:
    return dict(rows(con, "SELECT line, reason FROM quarantine ORDER BY line"))


def test_polls_every_timestamp_form_status_spelling_bom_crlf_and_quotes(con, tmp_path):
    path = write(
        tmp_path / "polls.csv",
        POLLS_HEADER,
        "s1,active,2023-01-22 12:09:39.388884 UTC",
        "s1,inactive,2023-01-22 13:09:39 UTC",
        "s1, Active ,2023-01-22T14:09:39.5Z",
        's1,"INACTIVE",2023-01-22T15:09:39+00:00',
        '"s1",active,"2023-01-22 16:09:39.000001 UTC"',
        "s1,active,2023-01-22T17:39:39+05:30",
        "s1,active,2023-01-22 18:09:39",
        newline="\r\n",
        bom=True,
    )
    [result] = ingest_paths(con, [path])
    assert (result.status, result.feed, result.rows_loaded, result.rows_rejected) == (
        "loaded", "polls", 7, 0,
    )
    assert rows(con, "SELECT ts, is_active FROM polls ORDER BY ts") == [
        (datetime(2023, 1, 22, 12, 9, 39), True),  # 17:39:39+05:30
        (datetime(2023, 1, 22, 12, 9, 39, 388884), True),
        (datetime(2023, 1, 22, 13, 9, 39), False),
        (datetime(2023, 1, 22, 14, 9, 39, 500000), True),
        (datetime(2023, 1, 22, 15, 9, 39), False),
        (datetime(2023, 1, 22, 16, 9, 39, 1), True),
        (datetime(2023, 1, 22, 18, 9, 39), True),  # no zone: the column is UTC
    ]


def test_each_bad_poll_row_is_quarantined_with_its_reason(con, tmp_path):
    path = write(
        tmp_path / "polls.csv",
        POLLS_HEADER,
        "good1,active,2023-01-22 12:00:00 UTC",  # line 2
        "good1,maybe,2023-01-22 12:00:00 UTC",  # 3 invalid status
        "good1,active,2023-02-30 12:00:00 UTC",  # 4 invalid timestamp (no such day)
        "good1,active,yesterday",  # 5 invalid timestamp
        "-bad,active,2023-01-22 12:00:00 UTC",  # 6 invalid store id
        ",active,2023-01-22 12:00:00 UTC",  # 7 empty store id
        "good1,active",  # 8 wrong field count
        "good1,active,2023-01-22 12:00:00 UTC,extra",  # 9 wrong field count
        'good1,"active,2023-01-22 12:00:00 UTC',  # 10 malformed quoting
        "x" * 129 + ",active,2023-01-22 12:00:00 UTC",  # 11 store id too long
        "good2,inactive,2023-01-22 13:00:00 UTC",  # 12
        "",  # an empty line carries nothing and is skipped
        "good2,active,2023-01-22 25:00:00 UTC",  # 14 invalid timestamp
    )
    [result] = ingest_paths(con, [path])
    assert quarantine(con) == {
        3: "invalid_status",
        4: "invalid_timestamp",
        5: "invalid_timestamp",
        6: "invalid_store_id",
        7: "invalid_store_id",
        8: "wrong_field_count",
        9: "wrong_field_count",
        10: "malformed_quoting",
        11: "invalid_store_id",
        14: "invalid_timestamp",
    }
    assert result.rows_loaded == 2
    assert result.rejected == {
        "invalid_status": 1,
        "invalid_timestamp": 3,
        "invalid_store_id": 3,
        "wrong_field_count": 2,
        "malformed_quoting": 1,
    }
    raw, file = rows(con, "SELECT raw, file FROM quarantine WHERE line = 3")[0]
    assert raw == "good1,maybe,2023-01-22 12:00:00 UTC"
    assert file == str(path)
    assert rows(con, "SELECT store_id FROM stores ORDER BY 1") == [("good1",), ("good2",)]
    manifest = rows(con, "SELECT rows_read, rows_loaded, rows_rejected FROM ingest_manifest")
    assert manifest == [(12, 2, 10)]


def test_duplicate_polls_collapse_and_inactive_wins_in_any_file_order(tmp_path):
    first = write(
        tmp_path / "a.csv", POLLS_HEADER,
        "s,active,2023-01-22 12:00:00 UTC",
        "s,active,2023-01-22 12:00:00.000000 UTC",  # same instant, same status
        "t,active,2023-01-22 12:00:00 UTC",
    )
    second = write(
        tmp_path / "b.csv", POLLS_HEADER,
        "s,active,2023-01-22T12:00:00Z",
        "t,inactive,2023-01-22T12:00:00+00:00",  # conflicts with a.csv: inactive wins
    )
    tables = []
    for order in ([first, second], [second, first]):
        with connect(tmp_path / f"{order[0].stem}.duckdb") as con:
            results = ingest_paths(con, order)
            tables.append(rows(con, "SELECT store_id, ts, is_active FROM polls "
                                    "JOIN stores USING (store_key) ORDER BY ALL"))
            assert sum(r.rows_duplicate for r in results) == 3
    assert tables[0] == tables[1] == [
        ("s", datetime(2023, 1, 22, 12), True),
        ("t", datetime(2023, 1, 22, 12), False),
    ]


def test_same_file_twice_changes_nothing(con, tmp_path):
    path = write(tmp_path / "polls.csv", POLLS_HEADER, "s,active,2023-01-22 12:00:00 UTC",
                 "s,bogus,2023-01-22 13:00:00 UTC")
    hours = write(tmp_path / "hours.csv", HOURS_HEADER, "s,0,09:00,17:00")
    ingest_paths(con, [path, hours])
    queries = [f"SELECT * FROM {table} ORDER BY ALL" for table in ("polls", "business_hours")]
    queries.append("SELECT * EXCLUDE (loaded_at) FROM quarantine ORDER BY ALL")
    snapshot = [rows(con, query) for query in queries]
    copy = write(tmp_path / "copy.csv", POLLS_HEADER, "s,active,2023-01-22 12:00:00 UTC",
                 "s,bogus,2023-01-22 13:00:00 UTC")
    results = ingest_paths(con, [path, hours, copy])
    assert [r.status for r in results] == ["skipped", "skipped", "skipped"]
    assert [rows(con, query) for query in queries] == snapshot
    assert rows(con, "SELECT count(*) FROM ingest_manifest") == [(2,)]


def test_unknown_header_is_refused_whole(con, tmp_path):
    good = write(tmp_path / "a.csv", POLLS_HEADER, "s,active,2023-01-22 12:00:00 UTC")
    bad = write(tmp_path / "b.csv", "store,state,when", "s,active,2023-01-22 13:00:00 UTC")
    results = ingest_paths(con, [bad, good])
    assert [r.status for r in results] == ["refused", "loaded"]
    assert "unknown header" in results[0].message and "store_id,status,timestamp_utc" in (
        results[0].message
    )
    assert rows(con, "SELECT count(*) FROM polls") == [(1,)]
    assert rows(con, "SELECT count(*) FROM quarantine") == [(0,)]
    assert rows(con, "SELECT file FROM ingest_manifest") == [(str(good),)]


def test_ids_are_text_big_integers_uuids_and_leading_zeros(con, tmp_path):
    ids = ["18446744073709551616", "9223372036854775808", "0042",
           "3f2504e0-4f89-11d3-9a0c-0305e82c3301", "a.b:c_d-e"]
    path = write(tmp_path / "polls.csv", POLLS_HEADER,
                 *(f"{i},active,2023-01-22 12:00:00 UTC" for i in ids))
    ingest_paths(con, [path])
    assert sorted(r[0] for r in rows(con, "SELECT store_id FROM stores")) == sorted(ids)
    assert list(report_frame(con)["store_id"]) == sorted(ids)


def test_hours_feed_day_column_names_24h_end_and_bad_rows(con, tmp_path):
    hours = write(
        tmp_path / "hours.csv",
        "store_id,day,start_time_local,end_time_local",
        "s,0,09:00,17:00",  # 2
        "s,1,22:00:00,24:00:00",  # 3
        "s,2,10:00,24:00",  # 4
        "s,7,09:00,17:00",  # 5 invalid day
        "s,x,09:00,17:00",  # 6 invalid day
        "s,3,25:00,17:00",  # 7 invalid start
        "s,3,09:00,17:60",  # 8 invalid end
        "s,3,24:00,17:00",  # 9 24:00 is an end time only
        "s,3,9am,17:00",  # 10 invalid start
        's,"4","08:00","12:00"',  # 11 quoted
    )
    [result] = ingest_paths(con, [hours])
    assert result.rows_loaded == 4
    assert quarantine(con) == {5: "invalid_day", 6: "invalid_day", 7: "invalid_start_time",
                               8: "invalid_end_time", 9: "invalid_start_time",
                               10: "invalid_start_time"}
    assert rows(con, "SELECT * FROM business_hours ORDER BY day_of_week") == [
        ("s", 0, 9 * 3600, 17 * 3600),
        ("s", 1, 22 * 3600, 86400),
        ("s", 2, 10 * 3600, 86400),
        ("s", 4, 8 * 3600, 12 * 3600),
    ]


def test_snapshots_replace_and_bad_zone_falls_back_to_chicago(con, tmp_path):
    polls = write(tmp_path / "polls.csv", POLLS_HEADER,
                  "s,active,2023-01-23 15:30:00 UTC", "z,active,2023-01-23 15:30:00 UTC")
    old_hours = write(tmp_path / "h1.csv", HOURS_HEADER, "s,0,00:00,01:00")
    new_hours = write(tmp_path / "h2.csv", HOURS_HEADER, "s,0,09:00,10:00")
    zones = write(tmp_path / "tz.csv", ZONES_HEADER,
                  "s,Mars/Olympus_Mons", "z,Asia/Kolkata", "z,Europe/Paris")
    ingest_paths(con, [polls, old_hours, new_hours, zones])
    assert rows(con, "SELECT start_sec FROM business_hours") == [(9 * 3600,)]
    assert quarantine(con) == {2: "invalid_timezone", 3: "conflicting_timezone",
                               4: "conflicting_timezone"}
    assert rows(con, "SELECT count(*) FROM timezones") == [(0,)]
    # Monday 09:00-10:00 in Chicago is 15:00-16:00 UTC; as of 16:00 the poll covers it all.
    frame = report_frame(con, as_of=datetime(2023, 1, 23, 16)).set_index("store_id")
    assert frame.loc["s", "uptime_last_day"] == pytest.approx(1.0)
    assert frame.loc["s", "downtime_last_day"] == pytest.approx(0.0)


def test_gzip_files_and_folders_load(con, tmp_path):
    folder = tmp_path / "feeds"
    folder.mkdir()
    with gzip.open(folder / "polls.csv.gz", "wt") as handle:
        handle.write(POLLS_HEADER + "\ns,active,2023-01-22 12:00:00 UTC\n")
    write(folder / "notes.txt", "not a feed")  # ignored: folders contribute only CSV files
    results = ingest_paths(con, [folder])
    assert [(r.feed, r.rows_loaded) for r in results] == [("polls", 1)]


def test_latin1_bytes_are_quarantined_not_fatal(con, tmp_path):
    """A line that is not UTF-8 is rejected on its own (the same whatever the other lines
    hold), its bytes kept escaped; the file's other rows load."""
    path = tmp_path / "polls.csv"
    path.write_bytes(
        (POLLS_HEADER + "\ns,active,2023-01-22 12:00:00 UTC\n").encode()
        + b"s\xe9,active,2023-01-22 12:00:00 UTC\n"
    )
    [result] = ingest_paths(con, [path])
    assert (result.rows_loaded, result.rejected) == (1, {"invalid_encoding": 1})
    assert rows(con, "SELECT line, raw FROM quarantine") == [
        (3, "s\\xe9,active,2023-01-22 12:00:00 UTC")
    ]


def test_a_file_duckdb_cannot_read_as_text_is_refused_and_the_rest_loads(con, tmp_path):
    broken = tmp_path / "broken.csv.gz"
    broken.write_bytes(b"store_id,status,timestamp_utc\n")  # named .gz but not gzip
    good = write(tmp_path / "good.csv", POLLS_HEADER, "s,active,2023-01-22 12:00:00 UTC")
    results = ingest_paths(con, [broken, good])
    assert [r.status for r in results] == ["refused", "loaded"]
    assert rows(con, "SELECT count(*) FROM ingest_manifest") == [(1,)]


def test_line_numbers_stay_exact_in_a_file_read_in_parallel_chunks(con, tmp_path):
    """DuckDB reads big files in parallel; quarantined line numbers must still be exact."""
    total = 400_000
    bad_lines = {2, 123_457, 250_001, total + 1}
    body = [
        f"store{n % 997},{'bogus' if n + 2 in bad_lines else 'active'},"
        f"2023-01-{1 + n % 28:02d} {n % 24:02d}:{n % 60:02d}:{n % 59:02d} UTC"
        for n in range(total)
    ]
    path = write(tmp_path / "big.csv", POLLS_HEADER, *body)
    [result] = ingest_paths(con, [path])
    assert result.rows_read == total
    found = rows(con, "SELECT line, raw FROM quarantine ORDER BY line")
    assert [line for line, _ in found] == sorted(bad_lines)
    assert all(raw == body[line - 2] for line, raw in found)


def test_line_numbers_stay_exact_in_a_time_zone_file_read_in_parallel(con, tmp_path):
    """The same for a snapshot feed whose check looks at other rows (a store named twice with
    different zones): the rows keep the file's order, whatever is joined to them."""
    total = 400_000
    body = [f"store{n},America/Chicago" for n in range(total)]
    body[5] = "store5,Mars/Olympus_Mons"
    body[123_455] = "store7,Europe/Paris"  # store7 is line 9 too: both conflict
    body[total - 1] = "store399999,Asia/Atlantis"
    path = write(tmp_path / "zones.csv", ZONES_HEADER, *body)
    [result] = ingest_paths(con, [path])
    assert result.rows_read == total
    found = rows(con, "SELECT line, reason, raw FROM quarantine ORDER BY line")
    assert [(line, reason) for line, reason, _ in found] == [
        (7, "invalid_timezone"), (9, "conflicting_timezone"),
        (123_457, "conflicting_timezone"), (total + 1, "invalid_timezone"),
    ]
    assert all(raw == body[line - 2] for line, _, raw in found)


def test_special_hours_feed_reason_column_closed_dates_and_bad_rows(con, tmp_path):
    """docs/semantics.md §1.1, §1.3, §2.16: the optional reason column in any place, both times
    empty closes the date, each bad row quarantined with its reason."""
    path = write(
        tmp_path / "special.csv",
        "Reason,store_id,date,start_time_local,end_time_local",
        "holiday,s1,2023-12-25,,",
        "Christmas Eve,s1,2023-12-24,10:00,14:00",
        '"late, party",s2,2023-12-31,20:00,03:00:00',
        ",s3,2024-02-29,00:00,24:00",
        "x,s1,2023-02-30,,",  # line 6: no such date
        "x,s1,2023-1-05,,",  # not YYYY-MM-DD
        "x,s1,2023-12-26,10:00,",  # one time empty
        "x,s1,2023-12-26,,14:00",
        "x,s1,2023-12-26,24:00,10:00",  # 24:00 ends a day only
        "x,s1,2023-12-26,10:00,24:30",
        "x,s 1,2023-12-26,,",
        "x,s1,2023-12-26",  # line 13
        "x,s1,2100-01-01,,",
    )
    [result] = ingest_paths(con, [path])
    assert (result.status, result.feed, result.rows_loaded) == ("loaded", "special_hours", 4)
    assert rows(con, "SELECT * FROM special_hours ORDER BY store_id, local_date") == [
        ("s1", datetime(2023, 12, 24).date(), 36000, 50400, "Christmas Eve"),
        ("s1", datetime(2023, 12, 25).date(), None, None, "holiday"),
        ("s2", datetime(2023, 12, 31).date(), 72000, 10800, "late, party"),
        ("s3", datetime(2024, 2, 29).date(), 0, 86400, None),
    ]
    assert quarantine(con) == {
        6: "invalid_date", 7: "invalid_date", 8: "invalid_end_time", 9: "invalid_start_time",
        10: "invalid_start_time", 11: "invalid_end_time", 12: "invalid_store_id",
        13: "wrong_field_count", 14: "invalid_date",
    }
    header = "store_id,date,start_time_local,end_time_local"
    without_reason = write(tmp_path / "special2.csv", header, "s9,2023-12-25,,")
    [result] = ingest_paths(con, [without_reason])
    assert result.rows_loaded == 1  # a snapshot: it replaces the one before
    assert rows(con, "SELECT * FROM special_hours") == [
        ("s9", datetime(2023, 12, 25).date(), None, None, None)]
    extra = write(tmp_path / "special3.csv", header + ",note", "s9,2023-12-25,,,x")
    [result] = ingest_paths(con, [extra])
    assert result.status == "refused" and "[reason]" in result.message
