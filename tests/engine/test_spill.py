"""Processes spilling to disk at once (engine/db.py): DuckDB names its spill files alike in every
process, so each connection that may share a spill place with another process (in-memory work,
read-only readers of one file) spills into a folder of its own, removed when it closes."""

from __future__ import annotations

import multiprocessing
import os
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
