"""Reports from windows built for them, beside those that read the stored windows
(engine/windows.py, keep_business_windows): the same rows, or the store is wrong."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import duckdb

SPAN = "SELECT covers_from, covers_to, stores_through FROM business_windows_span"


@contextmanager
def windows_built(
    con: duckdb.DuckDBPyConnection, store_ids: Sequence[str] | None = None
) -> Iterator[list[str]]:
    """Inside the block, a report of the store ids it yields (``store_ids``, default every
    store) builds its windows as if none were stored: the span's row is put aside until the
    block ends, and a report of named stores never stores windows."""
    kept = con.execute(SPAN).fetchall()
    con.execute("DELETE FROM business_windows_span")
    try:
        yield list(store_ids) if store_ids else [
            row[0] for row in con.execute("SELECT store_id FROM stores").fetchall()
        ]
    finally:
        con.execute("DELETE FROM business_windows_span")
        con.executemany("INSERT INTO business_windows_span VALUES (?, ?, ?)", kept)
