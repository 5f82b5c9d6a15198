"""Faults injected into reports, to test the blocking checks (never hooks in product code): the
engine function through which the report asset saves its partitions' rows to the history,
wrapped to corrupt what it saved; and a DuckDB file held by another process."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from types import ModuleType
from typing import TypeVar

import duckdb

# 200 hours: a store's week then holds more business time than a week has
EXTRA_WEEK_US = 720_000_000_000
# What defs/assets.py calls to compute and save the history rows, the first it has.
SAVERS = ("update_history", "compute_history")
T = TypeVar("T")


def corrupt_one_row(history_path: Path, hour: datetime) -> str:
    """Give one store of the partition ``hour`` 200 hours more business time in its week: the
    report then breaks values_within_period and uptime_plus_downtime_is_business_time. Returns
    the store."""
    con = duckdb.connect(str(history_path))
    try:
        (store,) = con.execute(
            "SELECT min(store_id) FROM uptime_report WHERE partition_hour = ? "
            "AND uptime_week_us > 0",
            [hour],
        ).fetchone()
        con.execute(
            "UPDATE uptime_report SET business_week_us = business_week_us + ? "
            "WHERE partition_hour = ? AND store_id = ?",
            [EXTRA_WEEK_US, hour, store],
        )
    finally:
        con.close()
    return store


def corrupting(save: Callable[..., T]) -> Callable[..., T]:
    """``save(con, history_path, as_of_by_hour, ...)``, then one row of the newest partition it
    saved corrupted."""

    def save_then_corrupt(con, path, as_of_by_hour, *args, **kwargs) -> T:
        saved = save(con, path, as_of_by_hour, *args, **kwargs)
        if as_of_by_hour:
            corrupt_one_row(Path(path), max(as_of_by_hour))
        return saved

    return save_then_corrupt


def saver_of(assets: ModuleType) -> str:
    """The name under which the report asset's module holds the history's saver."""
    return next(name for name in SAVERS if hasattr(assets, name))


@contextmanager
def held_open(
    path: Path, seconds: float = 600, *, read_only: bool = False
) -> Iterator[subprocess.Popen]:
    """Another process holding the DuckDB file for writing (DuckDB admits one writing process),
    or for reading, from the start of the block, for ``seconds`` or until the block ends (then
    killed)."""
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import duckdb, sys, time; con = duckdb.connect(sys.argv[1], read_only=sys.argv[3] == "
         "'True'); print('held', flush=True); time.sleep(float(sys.argv[2])); con.close()",
         str(path), str(seconds), str(read_only)],
        stdout=subprocess.PIPE, text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        yield holder
    finally:
        if holder.poll() is None:
            holder.kill()
        holder.wait()
