"""Business hours (local, weekly) -> business windows (UTC intervals): docs/semantics.md §2.5,
§2.6.

Windows are built for the span a piece of work needs (a report's week and look-back, a check's
partitions), never from the first poll: the cost follows the span and the stores asked for.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import duckdb
import pandas as pd

from storemon_pipeline.engine.chunks import store_chunks
from storemon_pipeline.engine.db import owns_table, sql
from storemon_pipeline.engine.zones import DEFAULT_TIMEZONE, zone_offset_pieces

# The zone pieces reach this far beyond the span, so that every wall-clock time of a window that
# touches the span is converted with the offsets in force around it.
ZONE_MARGIN = timedelta(days=4)
# The table business_windows keeps every store's windows over a span around the latest poll,
# so that the reports of a live feed read them instead of building them every hour (at 100x,
# 20 s of an 80 s report): from far enough back for a week of hourly reports ending at the
# latest poll (its first week and look-back reach 15 days back; a backfill or late data of the
# last week), and a day more, to two days ahead, so that it is built again about every other
# day.
LATEST_SPAN_BEFORE = timedelta(days=16)
LATEST_SPAN_AFTER = timedelta(days=2)


def prepare_zone_offsets(
    con: duckdb.DuckDBPyConnection,
    span_from: datetime,
    span_to: datetime,
    *,
    stores: str | None = None,
) -> None:
    """The temp table ``zone_offsets``: the pieces of the zones of the stores in the temp table
    ``stores`` (a store_id column; default: every zone in use) and the default zone, over the
    whole UTC years of [span_from, span_to] and its margin, for ``build_business_windows`` of
    any span inside it.

    Pieces are exact over the years they were read for, so the table only grows: a zone is
    read again only for years it lacks (``zone_offset_years``). A connection that serves many
    requests (the API's) converts each zone once; what a step left stays valid for the next."""
    first_year = (span_from - ZONE_MARGIN).year
    last_year = (span_to + ZONE_MARGIN).year
    con.execute(
        """
        CREATE TEMP TABLE IF NOT EXISTS zone_offsets (
            timezone VARCHAR, valid_from TIMESTAMP_NS, valid_to TIMESTAMP, utc_offset_sec BIGINT
        );
        CREATE TEMP TABLE IF NOT EXISTS zone_offset_years (
            timezone VARCHAR, first_year INTEGER, last_year INTEGER
        )
        """
    )
    in_use = "SELECT timezone FROM timezones" + (
        "" if stores is None else f" SEMI JOIN {stores} USING (store_id)"
    )
    lacking = con.execute(
        f"""
        WITH wanted AS (
            SELECT $default_timezone AS timezone
            UNION
            SELECT timezone FROM ({in_use})
        )
        SELECT
            wanted.timezone,
            least(zone_offset_years.first_year, $first_year) AS first_year,
            greatest(zone_offset_years.last_year, $last_year) AS last_year
        FROM wanted
        LEFT JOIN zone_offset_years USING (timezone)
        WHERE zone_offset_years.timezone IS NULL
           OR zone_offset_years.first_year > $first_year
           OR zone_offset_years.last_year < $last_year
        """,
        {"default_timezone": DEFAULT_TIMEZONE, "first_year": first_year, "last_year": last_year},
    ).fetchall()
    if not lacking:
        return
    pieces = pd.concat(
        [
            zone_offset_pieces([zone], datetime(first, 1, 1), datetime(last, 1, 1))
            for zone, first, last in lacking
        ],
        ignore_index=True,
    )
    years = pd.DataFrame(lacking, columns=["timezone", "first_year", "last_year"])
    con.register("zone_offsets_frame", pieces)
    con.register("zone_offset_years_frame", years)
    try:
        con.execute(
            """
            DELETE FROM zone_offsets
            WHERE timezone IN (SELECT timezone FROM zone_offset_years_frame);
            INSERT INTO zone_offsets SELECT * FROM zone_offsets_frame;
            DELETE FROM zone_offset_years
            WHERE timezone IN (SELECT timezone FROM zone_offset_years_frame);
            INSERT INTO zone_offset_years SELECT * FROM zone_offset_years_frame
            """
        )
    finally:
        con.unregister("zone_offsets_frame")
        con.unregister("zone_offset_years_frame")


def build_business_windows(
    con: duckdb.DuckDBPyConnection,
    covers_from: datetime,
    covers_to: datetime,
    into: str,
    *,
    zones_ready: bool = False,
) -> None:
    """Temp table ``into`` (store_key, window_start, window_end): the merged windows of the stores
    in the temp table ``window_stores(store_key, store_id)`` that reach into
    [covers_from, covers_to] (a window starting exactly at covers_to included). With
    ``zones_ready``, the zone offsets prepared for a wider span are used as they are."""
    if not zones_ready:
        prepare_zone_offsets(con, covers_from, covers_to, stores="window_stores")
    con.execute(
        sql("business_windows").format(into=into),
        {"covers_from": covers_from, "covers_to": covers_to, "default_timezone": DEFAULT_TIMEZONE},
    )


def scope_window_stores(con: duckdb.DuckDBPyConnection, query: str, **params: object) -> None:
    """The temp table ``window_stores`` from a query giving (store_key, store_id)."""
    con.execute(f"CREATE OR REPLACE TEMP TABLE window_stores AS {query}", params)


def keep_business_windows(
    con: duckdb.DuckDBPyConnection,
    span_from: datetime,
    span_to: datetime,
    *,
    rebuild: bool,
) -> int | None:
    """The store key up to which the table ``business_windows`` holds every store's windows
    reaching into [span_from, span_to], as ``build_business_windows`` makes them (None: it does
    not cover the span). With ``rebuild`` (work over every store, on a connection that may
    write), a table that does not cover the span is built again around the latest poll first,
    if the new one would cover it.

    ``business_windows_span`` says what the table holds: the windows reaching into [covers_from,
    covers_to] of the stores up to the key ``stores_through`` (stores that arrive later have
    greater keys: their windows are built where they are needed until the next rebuild), for
    the current hours, zones and special hours (an ingest that changes one of them empties both
    tables). Its windows may reach further than a span inside it asks, merged with neighbours
    outside the span: nothing a reading inside the span sees changes (docs/architecture.md)."""
    if not owns_table(con, "business_windows_span"):
        return None
    span = con.execute(
        "SELECT covers_from, covers_to, stores_through FROM business_windows_span"
    ).fetchone()
    if span is not None and span[0] <= span_from and span_to <= span[1]:
        return span[2]
    if not (rebuild and owns_table(con, "business_windows_span", writing=True)):
        return None
    latest, newest_key = con.execute("SELECT max(last_poll), max(store_key) FROM stores").fetchone()
    if latest is None:
        return None
    covers_from, covers_to = latest - LATEST_SPAN_BEFORE, latest + LATEST_SPAN_AFTER
    if not (covers_from <= span_from and span_to <= covers_to):
        return None  # a batch far from the latest poll builds its own
    con.begin()
    try:
        con.execute("DELETE FROM business_windows_span")
        fill_business_windows(con, covers_from, covers_to)
        con.execute(
            "INSERT INTO business_windows_span VALUES ($covers_from, $covers_to, $newest_key)",
            {"covers_from": covers_from, "covers_to": covers_to, "newest_key": newest_key},
        )
        con.commit()
    except BaseException:
        con.rollback()
        raise
    return newest_key


def fill_business_windows(
    con: duckdb.DuckDBPyConnection, covers_from: datetime, covers_to: datetime
) -> None:
    """Replace the rows of the table ``business_windows`` by every store's windows reaching
    into [covers_from, covers_to]."""
    con.execute("DELETE FROM business_windows")
    scope_window_stores(con, "SELECT store_key, store_id FROM stores")
    prepare_zone_offsets(con, covers_from, covers_to, stores="window_stores")
    # a store's windows take memory as its polls of the span do: chunked the same way
    for _ in store_chunks(con, "window_stores", covers_from, covers_to):
        build_business_windows(con, covers_from, covers_to, "stored_windows", zones_ready=True)
        con.execute("INSERT INTO business_windows SELECT * FROM stored_windows")
    con.execute("DROP TABLE stored_windows")


def read_stored_windows(
    con: duckdb.DuckDBPyConnection,
    covers_from: datetime,
    covers_to: datetime,
    into: str,
    key_range: tuple[int, int],
) -> None:
    """Temp table ``into`` as ``build_business_windows`` makes it for the stores of
    ``window_stores`` (keys in ``key_range``), from ``business_windows`` where
    ``keep_business_windows`` said that it covers the span."""
    con.execute(
        f"""
        CREATE OR REPLACE TEMP TABLE {into} AS
        SELECT store_key, window_start, window_end
        FROM business_windows
        SEMI JOIN window_stores USING (store_key)
        WHERE store_key BETWEEN $first_key AND $last_key
          AND window_end > $covers_from
          AND window_start <= $covers_to
        ORDER BY store_key, window_start
        """,
        {"first_key": key_range[0], "last_key": key_range[1], "covers_from": covers_from,
         "covers_to": covers_to},
    )


@dataclass(frozen=True)
class WindowsSummary:
    windows: int
    stores_with_windows: int
    first_window_start: datetime | None
    last_window_end: datetime | None
    stores_with_polls: int
    stores_open_24x7: int  # no valid business-hours row
    stores_in_default_timezone: int  # no valid time-zone row


def windows_summary(con: duckdb.DuckDBPyConnection) -> WindowsSummary:
    windows, stores, first, last = con.execute(
        "SELECT count(*), count(DISTINCT store_key), min(window_start), max(window_end) "
        "FROM business_windows"
    ).fetchone()
    poll_stores, always_open, default_zone = con.execute(
        """
        SELECT count(*),
               count(*) FILTER (WHERE store_id NOT IN (SELECT store_id FROM business_hours)),
               count(*) FILTER (WHERE store_id NOT IN (SELECT store_id FROM timezones))
        FROM stores
        WHERE first_poll IS NOT NULL  -- every store that has polls
        """
    ).fetchone()
    return WindowsSummary(windows, stores, first, last, poll_stores, always_open, default_zone)
