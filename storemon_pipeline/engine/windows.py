"""Business hours (local, weekly) -> business windows (UTC intervals): docs/semantics.md §2.5,
§2.6."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import duckdb

from storemon_pipeline.engine.db import sql
from storemon_pipeline.engine.zones import zone_offset_pieces
from storemon_pipeline.settings import DEFAULT_TIMEZONE

# Windows reach this far beyond what is needed, so nearby as-of instants need no rebuild.
MARGIN = timedelta(days=1)
# A report looks back this far from its as-of instant (its longest period).
LONGEST_PERIOD = timedelta(days=7)


def _ingest_state(con: duckdb.DuckDBPyConnection) -> str:
    """Changes whenever any file is ingested: windows built before that are stale."""
    count, latest = con.execute(
        "SELECT count(*), max(loaded_at) FROM ingest_manifest"
    ).fetchall()[0]
    return f"{count}@{latest}"


def poll_span(con: duckdb.DuckDBPyConnection) -> tuple[datetime | None, datetime | None]:
    return tuple(con.execute("SELECT min(ts), max(ts) FROM polls").fetchall()[0])


def needed_span(
    con: duckdb.DuckDBPyConnection, as_of: datetime | None = None
) -> tuple[datetime, datetime]:
    """What a report as of ``as_of`` (default: the latest poll) needs: every poll up to it
    (to tell in-hours polls) and its whole last week."""
    first_poll, last_poll = poll_span(con)
    if first_poll is None:
        return datetime(1970, 1, 1), datetime(1970, 1, 1)
    as_of = as_of or last_poll
    return min(first_poll, as_of - LONGEST_PERIOD), max(as_of, last_poll)


def refresh_business_windows(
    con: duckdb.DuckDBPyConnection,
    covers_from: datetime | None = None,
    covers_to: datetime | None = None,
) -> int:
    """Rebuild ``business_windows`` for every store with polls; returns the number of windows.

    By default it covers what a report as of any poll needs, plus a day each side.
    """
    needed_from, needed_to = needed_span(con)
    covers_from = covers_from or needed_from - MARGIN
    covers_to = covers_to or needed_to + MARGIN
    zones = [DEFAULT_TIMEZONE] + [
        row[0] for row in con.execute("SELECT DISTINCT timezone FROM timezones").fetchall()
    ]
    offsets = zone_offset_pieces(zones, covers_from - 4 * MARGIN, covers_to + 4 * MARGIN)
    con.register("zone_offsets_frame", offsets)
    con.execute("CREATE OR REPLACE TEMP TABLE zone_offsets AS SELECT * FROM zone_offsets_frame")
    con.unregister("zone_offsets_frame")
    con.execute(
        sql("business_windows"),
        {"covers_from": covers_from, "covers_to": covers_to, "default_timezone": DEFAULT_TIMEZONE},
    )
    state = _ingest_state(con)
    con.begin()
    try:
        con.execute("DELETE FROM business_windows")
        con.execute(
            "INSERT INTO business_windows SELECT * FROM computed_business_windows "
            "ORDER BY store_key, window_start"
        )
        con.execute("DELETE FROM business_windows_coverage")
        con.execute(
            "INSERT INTO business_windows_coverage VALUES (?, ?, now()::TIMESTAMP, ?)",
            [covers_from, covers_to, state],
        )
        con.commit()
    except BaseException:
        con.rollback()
        raise
    finally:
        con.execute("DROP TABLE IF EXISTS computed_business_windows")
    return con.execute("SELECT count(*) FROM business_windows").fetchall()[0][0]


def ensure_business_windows(con: duckdb.DuckDBPyConnection, as_of: datetime) -> None:
    """Rebuild the windows if an ingest happened since they were built, or they do not cover
    what a report as of ``as_of`` needs."""
    coverage = con.execute(
        "SELECT covers_from, covers_to, built_from FROM business_windows_coverage"
    ).fetchall()
    needed_from, needed_to = needed_span(con, as_of)
    if coverage:
        covers_from, covers_to, built_from = coverage[0]
        if (
            covers_from <= needed_from
            and covers_to >= needed_to
            and built_from == _ingest_state(con)
        ):
            return
    refresh_business_windows(con, needed_from - MARGIN, needed_to + MARGIN)


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
        FROM stores  -- every store that has polls
        """
    ).fetchone()
    return WindowsSummary(windows, stores, first, last, poll_stores, always_open, default_zone)
