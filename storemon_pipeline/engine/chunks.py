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
# ... and this many per result row it computes (a report's row of one store as of one instant,
# with its readings and their joins: a week of 168 hourly partitions took about 1 GB per
# million rows), so that a batch of many instants is cut by its rows too, never by instants.
BYTES_PER_CHUNK_ROW = 1024
CHUNK_MEMORY_SHARE = 0.5
# A scope this small is one chunk without counting its polls (one store's timeline, a few
# stores' late data).
ONE_CHUNK_STORES = 500


def store_chunks(
    con: duckdb.DuckDBPyConnection,
    scope: str,
    span_from: datetime,
    span_to: datetime,
    polls_per_chunk: int | None = None,
    rows_per_store: int = 0,
) -> Iterator[tuple[int, int]]:
    """Narrow the temp table ``scope`` (store_key, ...) to one chunk of its stores after
    another, yielding each chunk's first and last store key while ``scope`` holds it; at the
    end it holds the last chunk. A chunk is consecutive store keys whose polls in [span_from,
    span_to] and ``rows_per_store`` result rows per store take about the share of the memory
    limit a chunk may (or, when ``polls_per_chunk`` is given, with about that many polls). A
    single chunk leaves the table as it is; a scope of at most ONE_CHUNK_STORES stores is one
    chunk unless ``polls_per_chunk`` is given."""
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
        if polls_per_chunk is None:
            needed = polls * BYTES_PER_CHUNK_POLL + stores * rows_per_store * BYTES_PER_CHUNK_ROW
            budget = memory_limit_bytes(con) * CHUNK_MEMORY_SHARE
            chunks = min(stores, -(-int(needed) // max(1, int(budget))))
        else:
            chunks = min(stores, -(-polls // max(1, polls_per_chunk)))
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
