"""Chunks of consecutive stores: what keeps the memory of work over every store (a report, a
batch of partitions, an SLA period, the alerts, the windows) to a chunk's, never the fleet's.

A store's results never depend on another store's, so any split gives the same rows. A chunk
is sized from the connection's own memory limit (DuckDB's ``memory_limit``), so an engine
function needs no argument for it.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime

import duckdb

from storemon_pipeline.engine.db import memory_limit_bytes

# The stores are computed in chunks of consecutive store keys, each holding about this many
# bytes per poll of its span at its peak (windows, poll spans, status runs, prefix sums and
# their joins: 100 to 125 bytes measured at 30x), and taking this share of the connection's
# memory limit: memory follows the chunk, never the fleet.
BYTES_PER_CHUNK_POLL = 128
CHUNK_MEMORY_SHARE = 0.5
# A scope this small is one chunk without counting its polls (one store's timeline, a few
# stores' late data).
ONE_CHUNK_STORES = 500


def chunk_polls(con: duckdb.DuckDBPyConnection) -> int:
    """The polls a chunk of stores may hold, from the connection's memory limit."""
    return max(1, int(memory_limit_bytes(con) * CHUNK_MEMORY_SHARE / BYTES_PER_CHUNK_POLL))


def store_chunks(
    con: duckdb.DuckDBPyConnection,
    scope: str,
    span_from: datetime,
    span_to: datetime,
    polls_per_chunk: int | None = None,
) -> Iterator[tuple[int, int]]:
    """Narrow the temp table ``scope`` (store_key, ...) to one chunk of its stores after
    another (consecutive store keys with about ``polls_per_chunk`` polls in [span_from,
    span_to] each, default ``chunk_polls``), yielding each chunk's first and last store key
    while ``scope`` holds it; at the end it holds the last chunk. A single chunk leaves the
    table as it is; a scope of at most ONE_CHUNK_STORES stores is one chunk unless
    ``polls_per_chunk`` is given."""
    stores, first_key, last_key = con.execute(
        f"SELECT count(*), min(store_key), max(store_key) FROM {scope}"
    ).fetchone()
    chunks = 1
    if stores > ONE_CHUNK_STORES or polls_per_chunk is not None:
        # the scope's share of the span's polls, as its share of the stores: counting its own
        # would read every poll of the span
        (polls,) = con.execute(
            "SELECT count(*) * $stores // greatest((SELECT count(*) FROM stores), 1) FROM polls "
            "WHERE ts BETWEEN $span_from AND $span_to",
            {"span_from": span_from, "span_to": span_to, "stores": stores},
        ).fetchone()
        per_chunk = chunk_polls(con) if polls_per_chunk is None else max(1, polls_per_chunk)
        chunks = min(stores, -(-polls // per_chunk))
    if chunks <= 1:
        yield (first_key if first_key is not None else 0, last_key if last_key is not None else -1)
        return
    con.execute(f"CREATE OR REPLACE TEMP TABLE chunked_scope AS FROM {scope}")
    ranges = con.execute(
        """
        SELECT min(store_key), max(store_key)
        FROM (SELECT store_key, ntile($chunks) OVER (ORDER BY store_key) AS chunk
              FROM chunked_scope)
        GROUP BY chunk
        ORDER BY chunk
        """,
        {"chunks": chunks},
    ).fetchall()
    for chunk_first, chunk_last in ranges:
        con.execute(
            f"CREATE OR REPLACE TEMP TABLE {scope} AS FROM chunked_scope "
            "WHERE store_key BETWEEN $first_key AND $last_key",
            {"first_key": chunk_first, "last_key": chunk_last},
        )
        yield chunk_first, chunk_last
    con.execute("DROP TABLE chunked_scope")
