"""Opening the DuckDB file and loading the project's SQL."""

from __future__ import annotations

import time
from functools import cache
from importlib import resources
from pathlib import Path

import duckdb


@cache
def sql(name: str) -> str:
    """The text of ``storemon_pipeline/engine/sql/<name>.sql``."""
    return resources.files("storemon_pipeline.engine").joinpath("sql", f"{name}.sql").read_text()


def is_lock_error(exc: BaseException) -> bool:
    """DuckDB's answer when another process holds the file."""
    return isinstance(exc, duckdb.IOException) and "lock" in str(exc).lower()


def connect(
    path: Path | str,
    *,
    read_only: bool = False,
    wait_seconds: float = 0.0,
) -> duckdb.DuckDBPyConnection:
    """Open (and create the schema of) a storemon DuckDB file.

    DuckDB lets one process hold a file for writing; with ``wait_seconds`` we retry while
    another process holds it instead of failing at once.
    """
    path = Path(path)
    if not read_only:
        path.parent.mkdir(parents=True, exist_ok=True)
    deadline = time.monotonic() + wait_seconds
    delay = 0.05
    while True:
        try:
            con = duckdb.connect(str(path), read_only=read_only)
            break
        except duckdb.IOException as exc:
            if not is_lock_error(exc) or time.monotonic() >= deadline:
                raise
            time.sleep(delay)
            delay = min(delay * 2, 1.0)
    if not read_only:
        con.execute(sql("schema"))
    con.execute(sql("macros"))
    return con
