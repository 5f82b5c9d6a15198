"""Alerts on stores that are down (docs/semantics.md §2.18), decided set-based in DuckDB.

After every ingest, as of the latest poll T: a store whose current run of inactive status (the
report's interpolation, §2.8, over the sequence it uses at T, §2.7) covers at least a threshold
of business time has one open alert; it resolves when the store is active at T. The runs are
read from the report's timelines (engine/report.py, ``build_timelines``) built as of T: one pass
over a week and its look-back for every store, then, only for the stores whose run starts before
that week, passes reaching further back until their runs' starts are known. The decisions and
the outbox rows of the events they produce (``alert_outbox``, posted later to the webhooks) are
written in one transaction.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import duckdb
import pandas as pd

from storemon_pipeline.engine.chunks import store_chunks
from storemon_pipeline.engine.db import run_script, sql
from storemon_pipeline.engine.instants import as_naive_utc
from storemon_pipeline.engine.report import (
    LOOKBACK_MARGIN,
    WEEK,
    build_timelines,
    latest_poll,
    scope_report_stores,
)
from storemon_pipeline.engine.windows import keep_business_windows, prepare_zone_offsets
from storemon_pipeline.engine.zones import DEFAULT_TIMEZONE

# The application's default lives in its settings (STOREMON_ALERT_MIN_DOWN_MINUTES).
DEFAULT_MIN_DOWN_MINUTES = 30.0
# Each pass after the first reaches this many times further back before T.
REACH_FACTOR = 4
ALERT_STATES = ("open", "resolved")


@dataclass(frozen=True)
class AlertEvaluation:
    """What one evaluation did, as of the latest poll ``as_of`` (None: no polls, nothing done)."""

    as_of: datetime | None
    open: int  # open alerts after the evaluation
    opened: int
    resolved: int
    updated: int  # open alerts still down at T, brought up to date (start, business time)
    passes: int  # timelines built: 1, more when some runs started before the week


def threshold_us(min_down_minutes: float) -> int:
    if not min_down_minutes >= 0:
        raise ValueError(f"the minimum down time is a number of minutes >= 0, "
                         f"not {min_down_minutes!r}")
    return round(min_down_minutes * 60_000_000)


def evaluate_alerts(
    con: duckdb.DuckDBPyConnection,
    *,
    min_down_minutes: float = DEFAULT_MIN_DOWN_MINUTES,
    default_timezone: str = DEFAULT_TIMEZONE,
    latest: datetime | None = None,
) -> AlertEvaluation:
    """Open, update and resolve the alerts as of the latest poll (or ``latest``) and write the
    outbox rows of the alerts opened and resolved, all in one transaction."""
    threshold = threshold_us(min_down_minutes)
    con.begin()
    try:
        as_of = latest_poll(con) if latest is None else as_naive_utc(latest)
        if as_of is None:
            con.commit()
            return AlertEvaluation(None, 0, 0, 0, 0, 0)
        passes = _current_runs(con, as_of)
        con.execute(sql("alert_decide"), {"as_of": as_of, "threshold_us": threshold})
        earliest = con.execute(
            "SELECT min(least(down_since, coalesce(resolved_at, down_since))) "
            "FROM alert_decisions"
        ).fetchone()[0]
        prepare_zone_offsets(con, min(earliest or as_of, as_of), as_of)
        counts = dict(con.execute(
            "SELECT action, count(*) FROM alert_decisions GROUP BY action"
        ).fetchall())
        run_script(con, "alert_apply", {"as_of": as_of, "default_timezone": default_timezone})
        still_open = con.execute(
            "SELECT count(*) FROM alerts WHERE state = 'open'"
        ).fetchone()[0]
        con.commit()
    except BaseException:
        con.rollback()
        raise
    return AlertEvaluation(
        as_of, still_open, counts.get("opened", 0), counts.get("resolved", 0),
        counts.get("updated", 0), passes,
    )


def _current_runs(con: duckdb.DuckDBPyConnection, as_of: datetime) -> int:
    """The temp table ``alert_runs`` (alert_runs.sql), exact for every store that needs it: a
    store inactive at T, or active at T with an open alert. Returns the passes built."""
    con.execute(
        "CREATE OR REPLACE TEMP TABLE report_as_of AS SELECT ?::TIMESTAMP AS as_of", [as_of]
    )
    exact_from = as_of - WEEK
    store_ids: list[str] | None = None
    passes = 0
    while True:
        passes += 1
        scope_report_stores(con, as_of, store_ids)
        remaining = []
        horizon = exact_from - LOOKBACK_MARGIN
        # inside the evaluation's transaction: the stored windows are read, never built
        stored_through = keep_business_windows(con, horizon, as_of, rebuild=False)
        chunks = store_chunks(con, "report_stores", horizon, as_of)
        for step, key_range in enumerate(chunks):
            build_timelines(
                con, horizon, as_of, exact_from, key_range=key_range,
                windows_stored_through=stored_through,
            )
            con.execute(
                sql("alert_runs"),
                {"as_of": as_of, "exact_from_us": _epoch_us(exact_from)},
            )
            if store_ids is None and step == 0:
                con.execute(
                    "CREATE OR REPLACE TEMP TABLE alert_runs AS SELECT * FROM alert_runs_pass"
                )
            else:
                con.execute(
                    "DELETE FROM alert_runs "
                    "WHERE store_key IN (SELECT store_key FROM alert_runs_pass);"
                    "INSERT INTO alert_runs SELECT * FROM alert_runs_pass"
                )
            remaining += con.execute(
                """
                SELECT runs.store_id, stores.first_poll
                FROM alert_runs_pass AS runs
                JOIN stores USING (store_key)
                WHERE NOT runs.exact
                  AND (NOT runs.active_at_as_of
                       OR runs.store_id IN (SELECT store_id FROM alerts WHERE state = 'open'))
                """
            ).fetchall()
        if not remaining:
            return passes
        store_ids = [row[0] for row in remaining]
        oldest = min(row[1] for row in remaining)
        exact_from = max(as_of - (as_of - exact_from) * REACH_FACTOR, oldest)


def _epoch_us(instant: datetime) -> int:
    delta = instant - datetime(1970, 1, 1)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def read_alerts(
    con: duckdb.DuckDBPyConnection,
    state: str | None = None,
    store_id: str | None = None,
    default_timezone: str = DEFAULT_TIMEZONE,
) -> pd.DataFrame:
    """The alerts (of one state, of one store, or all), newest run first: alert_id, store_id,
    state, down_since, resolved_at, business_minutes_down (unrounded), opened_as_of,
    resolved_as_of, evaluated_as_of (naive UTC), and as the events say them: the store's
    timezone and business_minutes_rounded (half up, 2 decimals)."""
    if state is not None and state not in ALERT_STATES:
        raise ValueError(f"an alert's state is one of {', '.join(ALERT_STATES)}, not {state!r}")
    return con.execute(
        """
        SELECT alert_id, alerts.store_id, state, down_since, resolved_at,
               business_us_down / 60000000 AS business_minutes_down,
               opened_as_of, resolved_as_of, evaluated_as_of,
               coalesce(timezones.timezone, $default_timezone) AS timezone,
               two_decimals(business_us_down, 60000000)::DOUBLE AS business_minutes_rounded
        FROM alerts
        LEFT JOIN timezones USING (store_id)
        WHERE ($state IS NULL OR state = $state)
          AND ($store_id IS NULL OR alerts.store_id = $store_id)
        ORDER BY down_since DESC, alerts.store_id, alert_id
        """,
        {"state": state, "store_id": store_id, "default_timezone": default_timezone},
    ).df()


def read_outbox(con: duckdb.DuckDBPyConnection) -> pd.DataFrame:
    """The outbox rows in the order they were written (as of, then store and event)."""
    return con.execute(
        "SELECT * FROM alert_outbox ORDER BY created_as_of, event_key"
    ).df()


# --- read-only queries (the REST facade's GET /alerts; a read-only connection) -------------


def alerts_kept(con: duckdb.DuckDBPyConnection) -> bool:
    """Whether the file has the alert tables (a file last written before they existed, opened
    read-only, has none: no alerts)."""
    found = con.execute(
        "SELECT count(*) FROM information_schema.tables "
        "WHERE table_name IN ('alerts', 'alert_outbox') AND table_schema = 'main'"
    ).fetchone()[0]
    return found == 2


def store_polled(con: duckdb.DuckDBPyConnection, store_id: str) -> bool:
    """Whether a poll of the store was ever loaded."""
    return con.execute(
        "SELECT count(*) > 0 FROM stores WHERE store_id = ?", [store_id]
    ).fetchone()[0]


def alert_counts(
    con: duckdb.DuckDBPyConnection, store_id: str | None = None
) -> dict[str, int]:
    """How many alerts are in each state (of one store, or all)."""
    found = dict(con.execute(
        "SELECT state, count(*) FROM alerts WHERE $store_id IS NULL OR store_id = $store_id "
        "GROUP BY state",
        {"store_id": store_id},
    ).fetchall())
    return {state: int(found.get(state, 0)) for state in ALERT_STATES}
