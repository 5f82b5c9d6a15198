"""The ``storemon`` command end to end on data/, as a user runs it."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

from storemon_pipeline.engine.report import REPORT_COLUMNS
from storemon_pipeline.settings import SAMPLE_DATA_DIR


def storemon(home: Path, *args: str, **env_vars: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "STOREMON_HOME": str(home), **env_vars}
    return subprocess.run(
        [sys.executable, "-m", "storemon_pipeline.cli", *args],
        env=env, capture_output=True, text=True, timeout=300,
    )


def test_ingest_then_report_on_the_sample_data(tmp_path):
    home = tmp_path / "state"
    ingest = storemon(home, "ingest", str(SAMPLE_DATA_DIR))
    assert ingest.returncode == 0, ingest.stderr
    assert "store_status.csv.gz: polls:" in ingest.stdout
    assert "rejected (" in ingest.stdout  # the bad-rows sample is summarised by reason
    assert (home / "storemon.duckdb").exists()

    again = storemon(home, "ingest", str(SAMPLE_DATA_DIR))
    assert again.stdout.count("skipped") == len(list(SAMPLE_DATA_DIR.iterdir()))  # 5 files

    report = storemon(home, "report", "--as-of", "2023-01-24T12:00:00Z")
    assert report.returncode == 0, report.stderr
    assert "report as of 2023-01-24 12:00:00 UTC" in report.stdout
    out = home / "reports" / "latest.csv"
    with open(out, newline="") as handle:
        rows = list(csv.reader(handle))
    assert rows[0] == REPORT_COLUMNS and len(rows) > 1000

    custom = storemon(home, "report", "--out", str(tmp_path / "mine.csv"))
    assert custom.returncode == 0 and (tmp_path / "mine.csv").exists()

    # explain: the same numbers as the report's row, as a table and as JSON
    store, *values = rows[1]
    table = storemon(home, "explain", store, "--as-of", "2023-01-24T12:00:00Z")
    assert table.returncode == 0, table.stderr
    assert f"store {store} as of 2023-01-24 12:00:00 UTC" in table.stdout
    assert f"{values[2]} up / {values[5]} down (h)" in table.stdout  # last week
    assert "polls (" in table.stdout and "business time by status" in table.stdout
    as_json = storemon(home, "explain", store, "--as-of", "2023-01-24T12:00:00Z", "--json")
    answer = json.loads(as_json.stdout)
    assert [answer["values"][name] for name in REPORT_COLUMNS[1:]] == [float(v) for v in values]
    assert answer["source"] is None  # the CLI's report keeps no partition
    unknown = storemon(home, "explain", "42")
    assert unknown.returncode == 1 and "no poll of store 42" in unknown.stderr
    malformed = storemon(home, "explain", "4 2")
    assert malformed.returncode == 2 and "not a store id" in malformed.stderr


def test_unknown_header_fails_the_command_with_a_clear_message(tmp_path):
    odd = tmp_path / "odd.csv"
    odd.write_text("a,b\n1,2\n")
    result = storemon(tmp_path / "state", "ingest", str(odd))
    assert result.returncode == 1
    assert "refused" in result.stdout and "unknown header 'a,b'" in result.stdout


def test_report_without_polls_says_what_to_do(tmp_path):
    result = storemon(tmp_path / "state", "report")
    assert result.returncode == 1
    assert "ingest a store-status file first" in result.stderr


def test_a_report_over_its_limits_fails_clearly_and_leaves_no_spill_files(tmp_path):
    """Every DuckDB connection has a memory and a spill-space limit: past them the command
    fails with a message naming the settings, the disk is not filled, nothing is left behind,
    and the same report within the limits then works."""
    home = tmp_path / "state"
    feeds = tmp_path / "feeds"  # 3,000 stores, 8 days: about 400,000 polls
    assert storemon(home, "generate", "--out", str(feeds), "--stores", "3000").returncode == 0
    assert storemon(home, "ingest", str(feeds)).returncode == 0
    tight = {"STOREMON_DUCKDB_MEMORY_LIMIT_MB": "32", "STOREMON_DUCKDB_TEMP_LIMIT_GB": "0.001"}
    failed = storemon(home, "report", **tight)
    assert failed.returncode == 1
    assert "STOREMON_DUCKDB_TEMP_LIMIT_GB=0.001" in failed.stderr
    assert "STOREMON_DUCKDB_MEMORY_LIMIT_MB=32" in failed.stderr
    assert "Traceback" not in failed.stderr
    leftovers = [p for p in home.rglob("*") if p.name.endswith(".tmp") or ".tmp" in p.parts]
    assert leftovers == []
    assert list((home / "reports").glob("*")) == []  # no CSV, not even a temporary one
    assert storemon(home, "report").returncode == 0


def test_ingest_refuses_a_file_too_large_or_a_disk_too_full(tmp_path):
    """Refused whole with a clear message, nothing of the file loaded; the other files load."""
    home = tmp_path / "state"
    big = tmp_path / "big_polls.csv"
    row = "s,active,2023-01-22 12:00:00 UTC\n"
    big.write_text("store_id,status,timestamp_utc\n" + row * 40_000)
    small = tmp_path / "small_polls.csv"
    small.write_text("store_id,status,timestamp_utc\nt,active,2023-01-22 12:00:00 UTC\n")
    result = storemon(home, "ingest", str(big), str(small), STOREMON_MAX_FILE_MB="1")
    assert result.returncode == 1
    assert "big_polls.csv: refused" in result.stdout and "STOREMON_MAX_FILE_MB=1" in result.stdout
    assert "small_polls.csv: polls: 1 rows, 1 loaded" in result.stdout
    full = storemon(home, "ingest", str(big), STOREMON_MIN_FREE_DISK_MB="100000000")
    assert full.returncode == 1 and "STOREMON_MIN_FREE_DISK_MB=100000000" in full.stdout
    report = storemon(home, "report")
    assert report.returncode == 0 and "1 stores" in report.stdout  # only t: big never loaded


def test_a_report_does_not_start_without_room_to_spill(tmp_path):
    home = tmp_path / "state"
    assert storemon(home, "ingest", str(SAMPLE_DATA_DIR)).returncode == 0
    refused = storemon(home, "report", STOREMON_DUCKDB_TEMP_LIMIT_GB="1000000")
    assert refused.returncode == 1
    assert "STOREMON_DUCKDB_TEMP_LIMIT_GB" in refused.stderr and "free" in refused.stderr
    assert not (home / "reports" / "latest.csv").exists()


def test_hostile_files_never_print_a_traceback_nor_move_the_report(tmp_path):
    """Each measured hostile file after the sample: one line per file, exit 1 for the refused
    one, every other file's bad lines quarantined with their reason and line number, and the
    report afterwards as of the same instant (a device's wrong clock moves nothing)."""
    import duckdb

    home = tmp_path / "state"
    assert storemon(home, "ingest", str(SAMPLE_DATA_DIR)).returncode == 0
    before = storemon(home, "report")
    assert before.returncode == 0, before.stderr
    as_of_line = before.stdout.splitlines()[0].split(":")[0]

    header = b"store_id,status,timestamp_utc\n"
    new = b"hostile-new,active,2023-01-25 10:00:00 UTC\n"  # a store of its own
    hostile = tmp_path / "hostile"
    hostile.mkdir()
    files = {
        "a_skewed.csv": header + new + b"hostile-skew,active,2033-01-20 10:00:00 UTC\n",
        "b_far.csv": header + b"hostile-far,active,9999-12-31 23:59:59 UTC\n"
        + b"hostile-far,active,0001-01-01 00:00:00 UTC\n",
        "c_nul.csv": header + b"hostile-nul,act\x00ive,2023-01-25 10:00:00 UTC\n" + new,
        "d_long.csv": header + b"x" * 50_000_000 + b"\n" + new,
        "e_cr.csv": (header + new).replace(b"\n", b"\r")
        + b"hostile-cr,active,2023-01-25 10:00:00 UTC\r",
        "f_garbage.csv": bytes(range(256)) * 4000,
        "g_nuls.csv": header + new + b"\x00" * 100 + b"\n",
    }
    for name, data in files.items():
        (hostile / name).write_bytes(data)
    ingest = storemon(home, "ingest", str(hostile))
    output = ingest.stdout + ingest.stderr
    assert ingest.returncode == 1  # the garbage file is refused
    assert "Traceback" not in output
    lines = {line.split(":")[0].rsplit("/", 1)[-1]: line for line in ingest.stdout.splitlines()}
    assert "f_garbage.csv: refused — unknown header" in lines["f_garbage.csv"]
    assert "1 future_timestamp" in lines["a_skewed.csv"]
    assert "2 invalid_timestamp" in lines["b_far.csv"]
    assert "1 control_characters" in lines["c_nul.csv"]
    assert "1 line_too_long" in lines["d_long.csv"]
    assert "2 rows, 1 loaded, 1 duplicate, 0 rejected" in lines["e_cr.csv"]
    assert "1 control_characters" in lines["g_nuls.csv"]
    assert "6 refused" not in ingest.stdout and "; 1 refused" in ingest.stdout

    with duckdb.connect(str(home / "storemon.duckdb"), read_only=True) as con:
        found = con.execute(
            "SELECT regexp_extract(file, '[^/]*$'), line, reason, length(raw) FROM quarantine "
            "WHERE file LIKE ? ORDER BY ALL",
            [f"{hostile}%"],
        ).fetchall()
    assert [row[:3] for row in found] == [
        ("a_skewed.csv", 3, "future_timestamp"),
        ("b_far.csv", 2, "invalid_timestamp"),
        ("b_far.csv", 3, "invalid_timestamp"),
        ("c_nul.csv", 2, "control_characters"),
        ("d_long.csv", 2, "line_too_long"),
        ("g_nuls.csv", 3, "control_characters"),
    ]
    assert max(row[3] for row in found) < 5000  # never the 50 MB line itself

    after = storemon(home, "report")
    assert after.returncode == 0 and "Traceback" not in after.stdout + after.stderr
    assert after.stdout.splitlines()[0].split(":")[0] == as_of_line
    explained = storemon(home, "explain", "hostile-cr")
    assert explained.returncode == 0, explained.stderr
    skewed = storemon(home, "explain", "hostile-skew")
    assert skewed.returncode == 1 and "Traceback" not in skewed.stderr


def test_ingest_of_a_missing_path_says_so_without_a_traceback(tmp_path):
    result = storemon(tmp_path / "state", "ingest", str(tmp_path / "nowhere.csv"))
    assert result.returncode == 1
    assert "no such file or folder" in result.stderr and "Traceback" not in result.stderr
