"""Processes spilling to disk at once (engine/db.py): DuckDB names its spill files alike in every
process, so each connection that may share a spill place with another process (in-memory work,
read-only readers of one file) spills into a folder of its own, removed when it closes; what a
killed process left is swept by the next connection made beside it."""

from __future__ import annotations

import multiprocessing
import os
import subprocess
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import pytest

from storemon_pipeline.engine.db import ResourceLimits, connect, connect_memory

ROWS = 2_000_000
# about 300 MB of strings sorted and kept within 64 MB: most of it goes to disk, and is read back
SPILLING_QUERY = f"""
CREATE TEMP TABLE sorted_text AS
SELECT md5(i::VARCHAR) || md5((i * 7)::VARCHAR) AS text FROM range({ROWS}) AS r(i)
ORDER BY text
"""
READ_BACK = "SELECT count(*), count(DISTINCT text), min(text), max(text) FROM sorted_text"
LIMITS = ResourceLimits(memory_mb=64, temp_gb=4, threads=1)
CHILD_SECONDS = 120.0


def _spill_in_child(kind: str, folder: str, database: str | None) -> tuple:
    """In a child whose working directory is ``folder`` (where an in-memory database spills by
    default): a sort that spills, and what the spill left behind after closing."""
    os.chdir(folder)
    if kind == "reader":
        con = connect(database, read_only=True, limits=LIMITS)
    else:
        con = connect_memory(LIMITS)
    try:
        con.execute(SPILLING_QUERY)
        spilled = con.execute("SELECT count(*) FROM duckdb_temporary_files()").fetchone()[0]
        spill_folder = con.execute("SELECT current_setting('temp_directory')").fetchone()[0]
        result = con.execute(READ_BACK).fetchone()
    finally:
        con.close()
    return result, spilled, spill_folder


@pytest.mark.parametrize("kind", ["memory", "reader"])
def test_processes_spilling_at_once_do_not_share_spill_files(tmp_path: Path, kind: str) -> None:
    database = None
    if kind == "reader":
        database = str(tmp_path / "storemon.duckdb")
        connect(database).close()  # a storemon file, read by every child at once
    # a child that dies (DuckDB aborts on a spill file overwritten under it) fails the test
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(3, mp_context=context) as pool:
        futures = [pool.submit(_spill_in_child, kind, str(tmp_path), database) for _ in range(3)]
        results = [future.result(timeout=CHILD_SECONDS) for future in futures]
    for (count, distinct, first, last), spilled, _ in results:
        assert (count, distinct) == (ROWS, ROWS)
        assert first < last
        assert spilled > 0  # the sort did spill: the case is the one it claims
    assert results[0][0] == results[1][0] == results[2][0]
    folders = {folder for *_, folder in results}
    assert len(folders) == 3
    # each connection's folder went with it; nothing in the working directory or beside the file
    assert not any(Path(folder).exists() for folder in folders)
    leftovers = [p.name for p in tmp_path.rglob("*") if "spill" in p.name or p.suffix == ".tmp"]
    assert leftovers == []


# a reader that spills and keeps its spilled table until told to end (a line on its input),
# then reads it back; and one that spills until it is killed
KILLED_READER = f"""
import sys
from storemon_pipeline.engine.db import ResourceLimits, connect
limits = ResourceLimits(memory_mb={LIMITS.memory_mb}, temp_gb={LIMITS.temp_gb}, threads=1)
con = connect(sys.argv[1], read_only=True, limits=limits)
con.execute(sys.argv[2])
"""
KEEPING_READER = KILLED_READER + f"""
print("spilled", flush=True)
sys.stdin.readline()
print(con.execute({READ_BACK!r}).fetchone()[0], flush=True)
"""


def _spill_folders(folder: Path) -> set[Path]:
    return {path.parent for path in folder.glob(".duckdb-spill-*/*") if path.is_file()}


def test_what_a_killed_process_spilled_is_swept_by_the_next_connection(tmp_path: Path) -> None:
    database = tmp_path / "storemon.duckdb"
    connect(database).close()
    # a folder beside a shared file may be another machine's: not this machine's to judge
    other_machine = tmp_path / ".duckdb-spill-othermachine-1-0123456789ab"
    other_machine.mkdir()
    command = [sys.executable, "-c", KEEPING_READER, str(database), SPILLING_QUERY]
    live = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert live.stdout.readline().strip() == "spilled"
        kept = _spill_folders(tmp_path)
        assert len(kept) == 1
        killed = subprocess.Popen([sys.executable, "-c", KILLED_READER, *command[3:]])
        try:
            deadline = time.monotonic() + CHILD_SECONDS
            while not _spill_folders(tmp_path) - kept:
                assert killed.poll() is None, "the reader ended before it spilled"
                assert time.monotonic() < deadline, "the reader did not spill"
                time.sleep(0.05)
        finally:
            killed.kill()
            killed.wait()
        left = _spill_folders(tmp_path) - kept
        assert len(left) == 1  # DuckDB had no chance to remove it

        connect(database, read_only=True).close()

        assert not any(folder.exists() for folder in left)
        assert all(folder.exists() for folder in kept) and other_machine.exists()
        live.stdin.write("end\n")
        live.stdin.flush()
        assert live.stdout.readline().strip() == str(ROWS)  # the live reader's spill intact
    finally:
        live.kill()
        live.wait()


def test_a_second_reader_of_a_file_in_one_process_shares_its_spill(tmp_path: Path) -> None:
    """DuckDB gives the connections of one process to one file one database instance, whose
    spill folder cannot change once used: a second reader keeps it."""
    database = tmp_path / "storemon.duckdb"
    connect(database).close()
    first = connect(database, read_only=True, limits=LIMITS)
    try:
        first.execute(SPILLING_QUERY)
        second = connect(database, read_only=True, limits=LIMITS)
        spill_folder = "SELECT current_setting('temp_directory')"
        assert second.execute(spill_folder).fetchone() == first.execute(spill_folder).fetchone()
        second.close()
        assert first.execute(READ_BACK).fetchone()[0] == ROWS
    finally:
        first.close()
