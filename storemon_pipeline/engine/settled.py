"""Settled local days (docs/semantics.md §2.17): each store's business time, uptime and inactive
runs per local day, kept in the database so that a calendar month (or an ISO week) reads about
30 small rows per store and only its last day or two of polls (engine/sla.py).

A day is settled once it has ended (SETTLE_DELAY before the latest poll) and a poll of its
sequence at or after its end has arrived: from then on the polls that follow do not change it,
so its row holds for any as-of at or after that poll (``determined_by``). Late or changed polls,
new snapshots of a store's hours or zone, and the retention forget the rows they make untrue
(engine/sql/ingest_*.sql, engine/ingest.py); the next settlement settles those days again. Each
settlement's cost follows the days it settles (normally the day that has just ended), never the
history kept.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta

import duckdb
import pandas as pd

from storemon_pipeline.engine.db import run_script, sql
from storemon_pipeline.engine.report import latest_poll
from storemon_pipeline.engine.sla import (
    Narrowing,
    Period,
    compute_sla,
    define_periods,
    merge_small_groups,
    period_chunks,
)
from storemon_pipeline.engine.zones import DEFAULT_TIMEZONE

# A day is settled this long after it ends: by then the next poll in hours has come for most
# stores (those closed for longer wait for theirs), so a day is rarely computed twice.
SETTLE_DELAY = timedelta(hours=12)
# A store without settled days settles from this far before the latest poll at most: this
# month's days and last month's, what the monthly SLA and its check read.
SETTLED_HISTORY = timedelta(days=62)


@dataclass(frozen=True)
class Settlement:
    """What ``settle_days`` did."""

    latest_poll: datetime | None
    settled_until: datetime | None  # days that ended by then were settled if determined
    stores: int  # stores that settled at least one day
    days: int  # store-days settled
    downtime_pieces: int
    passes: int  # groups of stores computed (each in chunks)
    waiting: int  # stores whose next day has ended but no poll of theirs determines it yet
    total_days: int  # store-days settled in the database after it
    first_date: date | None  # the earliest and latest settled local dates after it
    last_date: date | None


NARROWING = """
CREATE OR REPLACE TEMP TABLE sla_store_periods AS
SELECT periods.*
FROM sla_store_periods AS periods
JOIN sla_period_specs AS specs USING (period_id)
JOIN settle_scope AS scope USING (store_key)
WHERE specs.period_from::DATE >= scope.settle_from
  AND periods.period_to <= $settle_until
"""


def settle_days(
    con: duckdb.DuckDBPyConnection, *, polls_per_chunk: int | None = None
) -> Settlement:
    """Settle every store's local days that have ended SETTLE_DELAY before the latest poll and
    are not settled yet, in one transaction. Stores are computed in groups by the first day
    they need, each group in chunks (engine/sla.py, ``period_chunks``)."""
    latest = latest_poll(con)
    if latest is None:
        return _summary(con, None, None, 0, 0, 0, 0, 0)
    until = latest - SETTLE_DELAY
    run_script(con, "settle_scope", {
        "latest_poll": latest, "settle_until": until,
        "earliest_date": (latest - SETTLED_HISTORY).date(),
    })
    _keep_ended(con, latest, until)
    groups = _groups(con)
    con.execute("CREATE OR REPLACE TEMP TABLE settled_now (store_key INTEGER, local_date DATE)")
    con.begin()
    try:
        for first, last in groups:
            con.execute(
                "CREATE OR REPLACE TEMP TABLE report_stores AS "
                "SELECT store_key, store_id, first_poll FROM settle_scope "
                "WHERE settle_from BETWEEN $first AND $last",
                {"first": first, "last": last},
            )
            days = [
                first + timedelta(days=n) for n in range((until.date() - first).days + 1)
            ]
            # (nothing is settled from these days on: the polls are read)
            for _ in period_chunks(
                con,
                [_day_period(day, latest) for day in days],
                latest,
                polls_per_chunk=polls_per_chunk,
                use_settled=False,
                narrowing=Narrowing(NARROWING, {"settle_until": until}),
            ):
                run_script(con, "settle_days_keep")
        run_script(con, "settle_days_span")
        con.commit()
    except BaseException:
        con.rollback()
        raise
    stores, days_settled = con.execute(
        "SELECT count(DISTINCT store_key), count(*) FROM settled_now"
    ).fetchone()
    pieces = con.execute(
        "SELECT count(*) FROM sla_day_downtime SEMI JOIN settled_now "
        "USING (store_key, local_date)"
    ).fetchone()[0]
    waiting = con.execute(
        "SELECT count(*) FROM settle_scope ANTI JOIN settled_now USING (store_key)"
    ).fetchone()[0]
    for table in ("settle_scope", "settled_now"):
        con.execute(f"DROP TABLE IF EXISTS {table}")
    return _summary(con, latest, until, stores, days_settled, pieces, len(groups), waiting)


def merge_settlements(parts: Sequence[Settlement]) -> Settlement:
    """The shards' settlements as one."""
    def extreme(pick, values):
        present = [v for v in values if v is not None]
        return pick(present) if present else None

    return Settlement(
        extreme(max, [p.latest_poll for p in parts]),
        extreme(max, [p.settled_until for p in parts]),
        sum(p.stores for p in parts),
        sum(p.days for p in parts),
        sum(p.downtime_pieces for p in parts),
        sum(p.passes for p in parts),
        sum(p.waiting for p in parts),
        sum(p.total_days for p in parts),
        extreme(min, [p.first_date for p in parts]),
        extreme(max, [p.last_date for p in parts]),
    )


def _day_period(day: date, latest: datetime) -> Period:
    """A local date as a period computed as of the latest poll: what settles it."""
    start = datetime.combine(day, datetime.min.time())
    return Period(start, start + timedelta(days=1), True, day.isoformat(), latest)


def _keep_ended(con: duckdb.DuckDBPyConnection, latest: datetime, until: datetime) -> None:
    """Keep in ``settle_scope`` the stores whose first day to settle has ended by ``until`` in
    their own zone (sla_periods.sql converts its bounds): the others have nothing to settle
    yet, and cost nothing."""
    firsts = [row[0] for row in con.execute(
        "SELECT DISTINCT settle_from FROM settle_scope ORDER BY settle_from").fetchall()]
    if not firsts:
        return
    con.execute("CREATE OR REPLACE TEMP TABLE report_stores AS "
                "SELECT store_key, store_id, first_poll FROM settle_scope")
    define_periods(con, [_day_period(day, latest) for day in firsts])
    con.execute(sql("sla_periods"), {"latest_poll": latest, "default_timezone": DEFAULT_TIMEZONE})
    con.execute(
        """
        DELETE FROM settle_scope
        WHERE store_key NOT IN (
            SELECT periods.store_key
            FROM sla_store_periods AS periods
            JOIN sla_period_specs AS specs USING (period_id)
            JOIN settle_scope AS scope
                ON scope.store_key = periods.store_key
                AND scope.settle_from = specs.period_from::DATE
            WHERE periods.period_to <= $settle_until
        )
        """,
        {"settle_until": until},
    )


def _groups(con: duckdb.DuckDBPyConnection) -> list[tuple[date, date]]:
    """The stores' first dates to settle, as ranges: the few stores whose days wait for a poll
    settle with the group before them."""
    return merge_small_groups(con.execute(
        "SELECT settle_from, count(*) FROM settle_scope GROUP BY settle_from ORDER BY settle_from"
    ).fetchall())


def _summary(
    con: duckdb.DuckDBPyConnection,
    latest: datetime | None,
    until: datetime | None,
    stores: int,
    days: int,
    pieces: int,
    passes: int,
    waiting: int,
) -> Settlement:
    total, first, last = con.execute(
        "SELECT count(*), min(local_date), max(local_date) FROM sla_days"
    ).fetchone()
    return Settlement(latest, until, stores, days, pieces, passes, waiting, total, first, last)


@dataclass(frozen=True)
class SettledCheck:
    """A sample of settled days against the same days computed again from the polls."""

    stores: int  # sampled stores with settled days among the dates compared
    days: int  # store-days compared
    mismatches: int  # store-days whose business time, uptime or inactive runs differ
    sample: pd.DataFrame  # a few mismatching store-days: settled and computed values


def check_settled_days(
    con: duckdb.DuckDBPyConnection, stores: int = 200, dates: int = 3, seed: int = 7
) -> SettledCheck:
    """The last ``dates`` settled local dates of ``stores`` stores drawn at random, computed
    again from their polls as of the latest poll (no settled day read): business time, uptime
    and the inactive runs that cover business time must be the settled ones, to the
    microsecond."""
    latest = latest_poll(con)
    last = con.execute("SELECT max(local_date) FROM sla_days").fetchone()[0]
    if latest is None or last is None:
        return SettledCheck(0, 0, 0, pd.DataFrame())
    days = [last - timedelta(days=n) for n in range(dates - 1, -1, -1)]
    store_ids = [
        row[0] for row in con.execute(
            f"SELECT store_id FROM (SELECT DISTINCT store_key FROM sla_days "
            f"WHERE local_date >= $first) JOIN stores USING (store_key) "
            f"USING SAMPLE reservoir({int(stores)} ROWS) REPEATABLE ({int(seed)})",
            {"first": days[0]},
        ).fetchall()
    ]
    compute_sla(con, [_day_period(day, latest) for day in days], store_ids, use_settled=False)
    con.execute("CREATE OR REPLACE TEMP TABLE checked_dates AS SELECT unnest($days) AS local_date, "
                "unnest(range(len($days)))::INTEGER AS period_id", {"days": days})
    run_script(con, "settled_days_compared")
    compared, mismatches = con.execute(
        "SELECT count(*), count(*) FILTER (WHERE NOT matches) FROM settled_days_compared"
    ).fetchone()
    distinct_stores = con.execute(
        "SELECT count(DISTINCT store_id) FROM settled_days_compared").fetchone()[0]
    sample = con.execute(
        "SELECT * EXCLUDE (matches) FROM settled_days_compared WHERE NOT matches "
        "ORDER BY store_id, local_date LIMIT 5"
    ).df()
    return SettledCheck(distinct_stores, compared, mismatches, sample)
