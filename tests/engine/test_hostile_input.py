"""Hostile input (docs/semantics.md §1.3): no bytes make the ingest raise, refuse a file for one
line, drop a line uncounted or move the latest poll into another decade. Every data line of a
file it accepts is one row: loaded, duplicate or rejected with its line number."""

from __future__ import annotations

import gzip
import io
import itertools
import re
import tempfile
import zlib
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from storemon_pipeline.engine.db import connect
from storemon_pipeline.engine.ingest import (
    FileResult,
    IngestGuards,
    ingest_paths,
    load_staged,
    merge_shard_results,
    stage_file,
)
from storemon_pipeline.engine.instants import utc_now
from storemon_pipeline.engine.report import latest_poll, report_frame
from storemon_pipeline.engine.shards import Shard
from storemon_pipeline.engine.textscan import (
    RAW_KEPT_BYTES,
    FileScan,
    sanitise,
)

POLLS_HEADER = b"store_id,status,timestamp_utc"
HOURS_HEADER = b"store_id,dayOfWeek,start_time_local,end_time_local"
ZONES_HEADER = b"store_id,timezone_str"
GOOD = b"s1,active,2023-01-22 12:00:00 UTC"
LATEST = datetime(2023, 1, 22, 13)
MAX_RAW_CHARS = 4 * RAW_KEPT_BYTES + 40  # every byte escaped, and the length said


@pytest.fixture
def con(tmp_path):
    connection = connect(tmp_path / "storemon.duckdb")
    yield connection
    connection.close()


def ingest_bytes(
    con, folder: Path, name: str, data: bytes, guards: IngestGuards | None = None
) -> FileResult:
    path = folder / name
    path.write_bytes(data)
    [result] = ingest_paths(con, [path], guards=guards)
    return result


def polls_file(*lines: bytes, end: bytes = b"\n") -> bytes:
    return end.join([POLLS_HEADER, GOOD, b"s1,inactive,2023-01-22 13:00:00 UTC", *lines]) + end


def quarantine(con, file: Path | None = None) -> dict[int, str]:
    query = "SELECT line, reason FROM quarantine" + (" WHERE file = ?" if file else "")
    return dict(con.execute(query + " ORDER BY line", [str(file)] if file else []).fetchall())


def assert_accounted(result: FileResult) -> None:
    assert result.status == "loaded", result.summary()
    assert result.rows_read == result.rows_loaded + result.rows_duplicate + result.rows_rejected


def assert_report_works(con) -> None:
    """The report as of the latest poll is computed and the latest poll is the sample's."""
    assert latest_poll(con) == LATEST
    assert len(report_frame(con)) >= 1


# --- the measured cases ------------------------------------------------------------------------


def test_a_poll_from_a_wrong_clock_is_in_the_future_and_moves_nothing(con, tmp_path):
    result = ingest_bytes(
        con, tmp_path, "skewed.csv", polls_file(b"s2,active,2033-01-20 10:00:00 UTC")
    )
    assert_accounted(result)
    assert result.rejected == {"future_timestamp": 1}
    assert quarantine(con) == {4: "future_timestamp"}
    assert max(result.poll_hours) == LATEST  # no report partition of 2033
    assert_report_works(con)
    assert con.execute("SELECT count(*) FROM stores WHERE store_id = 's2'").fetchone() == (0,)


def test_the_clock_skew_allowed_is_an_argument(con, tmp_path):
    """Within the skew a poll is accepted (a device a little ahead); beyond it, it is not."""
    soon = (utc_now() + timedelta(minutes=30)).strftime("%Y-%m-%d %H:%M:%S")
    data = polls_file(f"s2,active,{soon} UTC".encode())
    strict = IngestGuards(2**40, 0, tmp_path, max_clock_skew=timedelta(minutes=10))
    assert ingest_bytes(con, tmp_path, "a.csv", data, strict).rejected == {"future_timestamp": 1}
    lenient = IngestGuards(2**40, 0, tmp_path)  # the default: 60 minutes
    result = ingest_bytes(con, tmp_path, "b.csv", data + b"\n", lenient)
    assert (result.rows_loaded, result.rejected) == (1, {})


@pytest.mark.parametrize(
    "instant",
    [
        "9999-12-31 23:59:59 UTC",
        "0001-01-01 00:00:00 UTC",
        "1969-12-31 23:59:59.999999 UTC",
        "2100-01-01T00:00:00Z",
        "9999-12-31T23:59:59-05:00",  # beyond year 9999 in UTC
        "0001-01-01T00:00:00+05:00",  # before year 1 in UTC
    ],
)
def test_an_instant_a_report_cannot_represent_is_invalid(con, tmp_path, instant):
    result = ingest_bytes(con, tmp_path, "far.csv", polls_file(f"s2,active,{instant}".encode()))
    assert_accounted(result)
    assert quarantine(con) == {4: "invalid_timestamp"}
    assert_report_works(con)


def test_the_first_instant_of_1970_is_valid(con, tmp_path):
    result = ingest_bytes(
        con, tmp_path, "epoch.csv", polls_file(b"s2,active,1970-01-01 00:00:00 UTC")
    )
    assert (result.rows_loaded, result.rejected) == (3, {})


def test_a_nul_byte_rejects_its_line_not_the_file(con, tmp_path):
    data = polls_file(
        b"s2,act\x00ive,2023-01-22 12:00:00 UTC", b"s3,active,2023-01-22 12:00:00 UTC"
    )
    result = ingest_bytes(con, tmp_path, "nul.csv", data)
    assert_accounted(result)
    assert (result.rows_loaded, result.rejected) == (3, {"control_characters": 1})
    assert quarantine(con) == {4: "control_characters"}
    raw = con.execute("SELECT raw FROM quarantine").fetchone()[0]
    assert raw == "s2,act\\x00ive,2023-01-22 12:00:00 UTC" and "\x00" not in raw


@pytest.mark.parametrize("where", ["middle", "last, without a line end", "only"])
def test_a_50_mb_line_is_quarantined_cut_short(con, tmp_path, where):
    long = b"x" * 50_000_000
    if where == "middle":
        data, line, loaded = polls_file(long, b"s3,active,2023-01-22 12:00:00 UTC"), 4, 3
    elif where == "only":
        data, line, loaded = POLLS_HEADER + b"\n" + long + b"\n", 2, 0
    else:
        data, line, loaded = polls_file() + long, 4, 2
    result = ingest_bytes(con, tmp_path, "long.csv", data)
    assert_accounted(result)
    assert (result.rows_loaded, result.rejected) == (loaded, {"line_too_long": 1})
    assert quarantine(con) == {line: "line_too_long"}
    raw = con.execute("SELECT raw FROM quarantine").fetchone()[0]
    assert raw.startswith("x" * 100) and raw.endswith("(50,000,000 bytes)")
    assert len(raw) < MAX_RAW_CHARS


def test_the_line_limit_is_an_argument(con, tmp_path):
    guards = IngestGuards(2**40, 0, tmp_path, max_line_bytes=39)
    result = ingest_bytes(
        con, tmp_path, "a.csv", polls_file(b"s2,active,2023-01-22 12:00:00.000001 UTC"), guards
    )
    assert result.rejected == {"line_too_long": 1}


@pytest.mark.parametrize("end", [b"\r", b"\r\n", b"\n"])
def test_every_line_end_ends_a_line(con, tmp_path, end):
    data = polls_file(
        b"s2,bogus,2023-01-22 12:00:00 UTC", b"", b"s3,active,2023-01-22 12:00:00 UTC", end=end
    )
    result = ingest_bytes(con, tmp_path, "ends.csv", data)
    assert_accounted(result)
    assert (result.rows_read, result.rows_loaded) == (4, 3)
    assert quarantine(con) == {4: "invalid_status"}  # line 5 is empty: no row


def test_mixed_line_ends_load_with_exact_line_numbers(con, tmp_path):
    """LF, CRLF and lone CRs in one file (which DuckDB alone refuses whole)."""
    data = (
        POLLS_HEADER
        + b"\r\n"
        + GOOD
        + b"\n"
        + b"s2,bogus,2023-01-22 12:00:00 UTC\r"
        + b"\r\n"
        + b"s3,active,2023-01-22 12:00:00 UTC\r\n"
        + b"s4,maybe,2023-01-22 12:00:00 UTC"
    )
    result = ingest_bytes(con, tmp_path, "mixed.csv", data)
    assert_accounted(result)
    assert quarantine(con) == {3: "invalid_status", 6: "invalid_status"}
    assert result.rows_loaded == 2


def test_binary_garbage_is_refused_whole_with_one_clear_message(con, tmp_path):
    garbage = bytes(range(256)) * 1000 + zlib.compress(bytes(range(256)) * 1000)
    result = ingest_bytes(con, tmp_path, "garbage.csv", garbage)
    assert result.status == "refused" and result.message.startswith("unknown header")
    assert len(result.message) < 600 and "\x00" not in result.message
    gz = ingest_bytes(con, tmp_path, "garbage.csv.gz", garbage)
    assert gz.status == "refused" and "cannot be read" in gz.message
    assert con.execute("SELECT count(*) FROM ingest_manifest").fetchone() == (0,)


def test_binary_garbage_after_a_header_is_every_line_rejected(con, tmp_path):
    garbage = bytes(range(256)) * 1000
    result = ingest_bytes(con, tmp_path, "garbage.csv", POLLS_HEADER + b"\n" + garbage)
    assert_accounted(result)
    lines = [line for line in re.split(rb"\r\n|\r|\n", garbage) if line]
    assert result.rows_read == result.rows_rejected == len(lines)
    longest = con.execute("SELECT max(length(raw)) FROM quarantine").fetchone()[0]
    assert longest < MAX_RAW_CHARS


def test_a_trailing_line_of_nuls_is_counted(con, tmp_path):
    result = ingest_bytes(con, tmp_path, "nuls.csv", polls_file(b"\x00" * 64))
    assert_accounted(result)
    assert (result.rows_read, result.rejected) == (3, {"control_characters": 1})
    assert quarantine(con) == {4: "control_characters"}


def test_control_characters_and_del_are_rejected_tab_is_not(con, tmp_path):
    data = polls_file(
        b"s2,active\x07,2023-01-22 12:00:00 UTC",
        b"s3,active\x7f,2023-01-22 12:00:00 UTC",
        b"s4,\tactive,2023-01-22 12:00:00 UTC",
    )
    result = ingest_bytes(con, tmp_path, "ctl.csv", data)
    assert quarantine(con) == {
        4: "control_characters",
        5: "control_characters",
        6: "invalid_status",
    }
    assert_accounted(result)


def test_a_gzip_file_with_hostile_lines_loads_its_good_rows(con, tmp_path):
    text = polls_file(
        b"s2,\xff\xfe,2023-01-22 12:00:00 UTC", b"\x00", b"s3,active,2023-01-22 12:00:00 UTC"
    )
    members = gzip.compress(text[:50]) + gzip.compress(text[50:])  # two members, as gzip allows
    result = ingest_bytes(con, tmp_path, "polls.csv.gz", members)
    assert_accounted(result)
    assert quarantine(con) == {4: "invalid_encoding", 5: "control_characters"}
    assert result.rows_loaded == 3


@pytest.mark.parametrize(
    "damage",
    ["cut short", "garbage after it", "not gzip"],
)
def test_a_damaged_gzip_file_is_refused_and_the_next_file_loads(con, tmp_path, damage):
    whole = gzip.compress(polls_file() * 200)
    data = {
        "cut short": whole[:-40],
        "garbage after it": whole + b"\x00" * 8,
        "not gzip": polls_file(),
    }[damage]
    (tmp_path / "bad.csv.gz").write_bytes(data)
    (tmp_path / "good.csv").write_bytes(polls_file())
    results = ingest_paths(con, [tmp_path / "bad.csv.gz", tmp_path / "good.csv"])
    assert [r.status for r in results] == ["refused", "loaded"]
    assert "cannot be read" in results[0].message


def test_a_gzip_bomb_is_refused_by_the_size_of_its_text(con, tmp_path):
    bomb = gzip.compress(polls_file() + b"\n" * 30_000_000)  # 30 MB of text, 30 kB on disk
    guards = IngestGuards(2**20, 0, tmp_path)  # 1 MB
    result = ingest_bytes(con, tmp_path, "bomb.csv.gz", bomb, guards)
    assert result.status == "refused" and "STOREMON_MAX_FILE_MB=1 MB once decompressed" in (
        result.message
    )


def test_a_header_too_long_or_not_text_is_an_unknown_header(con, tmp_path):
    long = ingest_bytes(con, tmp_path, "long.csv", b"a" * 100_000 + b"\n" + GOOD + b"\n")
    assert long.status == "refused" and long.message.startswith("unknown header ''")
    cr = ingest_bytes(con, tmp_path, "cr.csv", b"store\r\x00id\r" + GOOD)
    assert cr.status == "refused" and cr.message.startswith("unknown header 'store'")
    quoted = ingest_bytes(con, tmp_path, "q.csv", b'"store_id","status",timestamp_utc\r' + GOOD)
    assert quoted.status == "loaded" and quoted.rows_loaded == 1


def test_snapshot_duplicates_are_counted(con, tmp_path):
    hours = HOURS_HEADER + b"\ns,0,09:00,17:00\ns,0,09:00,17:00\ns,0,09:00:00,17:00\ns,1,x,y\n"
    result = ingest_bytes(con, tmp_path, "hours.csv", hours)
    assert_accounted(result)
    assert (result.rows_loaded, result.rows_duplicate, result.rows_rejected) == (1, 2, 1)
    zones = ZONES_HEADER + b"\ns,Europe/Paris\ns,Europe/Paris\nt,Asia/Tokyo\n"
    result = ingest_bytes(con, tmp_path, "zones.csv", zones)
    assert (result.rows_loaded, result.rows_duplicate, result.rows_rejected) == (2, 1, 0)
    manifest = con.execute(
        "SELECT feed, rows_read, rows_loaded, rows_duplicate, rows_rejected FROM ingest_manifest "
        "WHERE feed <> 'polls' ORDER BY feed"
    ).fetchall()
    assert manifest == [("business_hours", 4, 1, 2, 1), ("timezones", 3, 2, 1, 0)]


def test_a_sharded_ingest_quarantines_the_same_lines(tmp_path):
    """stage_file checks the file once for all shards: the same hostile lines, the same rows."""
    data = polls_file(
        b"s2,\x00,x",
        b"y" * 70_000,
        b"s3,active,2033-01-01 00:00:00 UTC",
        b"s4,active,2023-01-22 12:00:00 UTC",
    )
    path = tmp_path / "polls.csv"
    path.write_bytes(data)
    with connect(tmp_path / "one.duckdb") as one:
        [expected] = ingest_paths(one, [path])
        one_quarantine = quarantine(one)
    with connect(tmp_path / "stage.duckdb") as staging:
        staged = stage_file(staging, path, tmp_path / "staging", 3)
    parts, shard_quarantine = [], {}
    for k in range(3):
        with connect(tmp_path / f"shard{k}.duckdb") as shard:
            parts.append([load_staged(shard, staged, Shard(k, 3))])
            shard_quarantine |= quarantine(shard)
    [merged] = merge_shard_results(parts)
    assert (merged.rows_read, merged.rows_loaded, merged.rejected) == (
        expected.rows_read,
        expected.rows_loaded,
        expected.rejected,
    )
    assert (
        shard_quarantine
        == one_quarantine
        == {
            4: "control_characters",
            5: "line_too_long",
            6: "future_timestamp",
        }
    )


# --- the scan: the same answer whatever the chunks ---------------------------------------------

PIECES = st.sampled_from(
    [
        b"\n",
        b"\r",
        b"\r\n",
        b"\x00",
        b"\x7f",
        b"\t",
        b"\xc3\xa9",
        b"\xc3",
        b"\xa9",
        b"\xff",
        b"\xed\xa0\x80",
        b"\xf0\x9f\x98\x80",
        b",",
        b'"',
        b" ",
        b"x" * 30,
        GOOD,
    ]
)
TEXT = st.lists(st.one_of(PIECES, st.binary(max_size=12)), max_size=40).map(b"".join)


def _sanitised(path: Path, chunk: int, max_line: int) -> tuple[bytes, bytes]:
    with tempfile.TemporaryDirectory() as folder:
        copy = sanitise(path, Path(folder), max_line, chunk)
        return copy.text.read_bytes(), copy.hostile.read_bytes()


@settings(max_examples=300, deadline=None)
@given(text=TEXT, chunk=st.integers(1, 9), gz=st.booleans())
def test_the_scan_does_not_depend_on_the_chunks(text, chunk, gz):
    """Clean or not, and the sanitised copy, are the same read in pieces of 1..9 bytes as in one
    piece; a clean file's copy is the file itself with LF ends; the copy has as many lines."""
    max_line = 24
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / ("t.csv.gz" if gz else "t.csv")
        path.write_bytes(gzip.compress(text) if gz else text)
        verdicts = []
        for size in (chunk, 2**20):
            with FileScan(path, max_line, chunk_bytes=size) as scan:
                scan.first_line()
                verdicts.append(scan.finish().clean)
        copies = [_sanitised(path, size, max_line) for size in (chunk, 2**20)]
    assert verdicts[0] == verdicts[1]
    assert copies[0] == copies[1]
    copy, hostile = copies[0]
    lines = re.split(rb"\r\n|\r|\n", text)
    if lines and lines[-1] == b"":
        lines.pop()
    assert copy.count(b"\n") == len(lines)
    if verdicts[0]:
        assert copy == text.replace(b"\r\n", b"\n") + (
            b"" if text.endswith(b"\n") or not text else b"\n"
        )
        assert hostile == b"line,reason,raw\n"


# --- arbitrary bytes through the ingest --------------------------------------------------------

HEADERS = st.sampled_from(
    [POLLS_HEADER, HOURS_HEADER, ZONES_HEADER, b"\xef\xbb\xbf" + POLLS_HEADER]
)
ROWS = st.sampled_from(
    [
        GOOD,
        b"s2,inactive,2023-01-22T12:30:00Z",
        b"s3,0,09:00,17:00",
        b"s4,Europe/Paris",
        b"s5,active,2033-01-20 10:00:00 UTC",
        b"s6,active,9999-12-31 23:59:59 UTC",
        b'"s7",active,x',
    ]
)
BODY = st.lists(
    st.one_of(ROWS, PIECES, st.binary(max_size=20), st.text(max_size=10).map(str.encode)),
    max_size=30,
).map(b"".join)


@pytest.fixture(scope="module")
def shared(tmp_path_factory):
    folder = tmp_path_factory.mktemp("hostile")
    connection = connect(folder / "storemon.duckdb")
    yield connection, folder, itertools.count()
    connection.close()


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    header=st.one_of(st.none(), HEADERS),
    end=st.sampled_from([b"\n", b"\r\n", b"\r"]),
    body=BODY,
    gz=st.booleans(),
    long_lines=st.booleans(),
)
def test_any_bytes_are_accounted_for_and_nothing_raises(shared, header, end, body, gz, long_lines):
    con, folder, counter = shared
    text = body if header is None else header + end + body
    path = folder / f"f{next(counter)}.csv{'.gz' if gz else ''}"
    if gz:
        buffer = io.BytesIO()
        with gzip.GzipFile(fileobj=buffer, mode="wb", mtime=0) as handle:
            handle.write(text)
        path.write_bytes(buffer.getvalue())
    else:
        path.write_bytes(text)
    max_line = 60 if long_lines else 64 * 2**10  # 60: longer than any header
    [result] = ingest_paths(
        con, [path], guards=IngestGuards(2**40, 0, folder, max_line_bytes=max_line)
    )
    if header is not None:
        assert result.status in ("loaded", "skipped"), result.message
    if result.status != "loaded":
        return
    lines = re.split(rb"\r\n|\r|\n", text)
    data_lines = [line for line in lines[1:] if line]
    assert result.rows_read == len(data_lines)
    assert result.rows_read == result.rows_loaded + result.rows_duplicate + result.rows_rejected
    kept = con.execute(
        "SELECT line, raw FROM quarantine WHERE file = ? ORDER BY line", [str(path)]
    ).fetchall()
    assert len(kept) == result.rows_rejected == len({line for line, _ in kept})
    assert all(1 < line <= len(lines) and lines[line - 1] for line, _ in kept)
    assert all("\x00" not in raw and len(raw) <= max(MAX_RAW_CHARS, max_line) for _, raw in kept)
    assert latest_poll(con) is None or latest_poll(con) <= LATEST
