"""Availability over any period (docs/semantics.md §2.17), computed set-based in DuckDB.

A period ``[from, to)`` is given in UTC, or as wall-clock readings that every store reads in its
own zone (a calendar month, an ISO week: ``month_period``, ``week_period``). For every store and
period, in one pass: business time, uptime and downtime as the report counts them as of
``A = min(to, latest poll)``, the availability, the incidents (maximal inactive intervals that
overlap business time), and whether a target is met.

The work is the report's (engine/report.py, ``build_timelines``): windows, look-back, search
before it and timelines are built once for the span of all the periods asked for, so the cost
follows the periods' polls, never the whole history. The results are the temp table
``sla_results`` (one row per period and store, integer microseconds); ``sla_frame``,
``sla_summary`` and ``export_sla_csv`` read it.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path

import duckdb
import pandas as pd

from storemon_pipeline.engine.chunks import store_chunks
from storemon_pipeline.engine.db import ResourceLimits, connect_memory, database, run_script, sql
from storemon_pipeline.engine.files import atomic_target
from storemon_pipeline.engine.instants import as_naive_utc
from storemon_pipeline.engine.report import (
    HOUR_US,
    LOOKBACK_MARGIN,
    MINUTE_US,
    NoPollsError,
    build_timelines,
    latest_poll,
    scope_report_stores,
)
from storemon_pipeline.engine.shards import union_connection
from storemon_pipeline.engine.windows import prepare_zone_offsets
from storemon_pipeline.engine.zones import DEFAULT_TIMEZONE

SLA_COLUMNS = [
    "store_id",
    "period_start",
    "period_end",
    "business_hours",
    "uptime_hours",
    "downtime_hours",
    "availability_pct",
    "incidents",
    "longest_incident_minutes",
    "mean_time_to_recover_minutes",
    "target_met",
]
# The application's default target lives in its settings (STOREMON_SLA_TARGET_PCT); this is
# the engine's when a caller gives none.
DEFAULT_TARGET_PCT = 99.0
FIRST_YEAR, LAST_YEAR = 1970, 2099  # the instants the engine reports on (docs/semantics.md §1.1)
MONTH_PATTERN = re.compile(r"(\d{4})-(\d{2})")
WEEK_PATTERN = re.compile(r"(\d{4})-W(\d{2})")


class PeriodError(ValueError):
    """A period that cannot be asked for: its end not after its start, a malformed month."""


@dataclass(frozen=True)
class Period:
    """``[start, end)``: naive UTC instants, or with ``local`` wall-clock readings that each
    store converts in its own zone (the first instant its clock reads them, §2.6).

    A period is computed as of ``min(end, latest poll)`` by default; ``as_of`` (a UTC
    instant, naive or aware) computes it as of ``min(as_of, latest poll)`` instead, using the
    polls up to then and counting up to ``min(end, that instant)``: a day of a month as the
    month saw it. With ``as_of_local`` (a local period only), ``as_of`` is a wall-clock
    reading that each store converts like the bounds: a day of a month as of the month's end
    in each store's zone."""

    start: datetime
    end: datetime
    local: bool = False
    name: str = ""
    as_of: datetime | None = None
    as_of_local: bool = False

    def __post_init__(self) -> None:
        if self.as_of_local and not (self.local and self.as_of is not None):
            raise PeriodError("a wall-clock as-of is for a local period with an as-of")
        if self.end <= self.start:
            raise PeriodError(
                f"the period's end ({self.end.isoformat(sep=' ')}) must be after its start "
                f"({self.start.isoformat(sep=' ')})"
            )


def utc_period(start: datetime, end: datetime) -> Period:
    """``[start, end)`` in UTC (aware instants are converted, naive ones are UTC)."""
    start, end = as_naive_utc(start), as_naive_utc(end)
    return Period(start, end, name=f"{start.isoformat()} to {end.isoformat()}")


def _check_year(year: int, text: str) -> None:
    if not FIRST_YEAR <= year <= LAST_YEAR:
        raise PeriodError(f"{text!r}: the year must be within {FIRST_YEAR}-{LAST_YEAR}")


def month_period(text: str) -> Period:
    """``YYYY-MM``: each store's local calendar month, from the first instant its wall clock
    reads the 1st at 00:00 to the first instant it reads the next month's 1st at 00:00."""
    match = MONTH_PATTERN.fullmatch(text.strip())
    if not match:
        raise PeriodError(f"not a month YYYY-MM: {text!r}")
    year, month = int(match[1]), int(match[2])
    if not 1 <= month <= 12:
        raise PeriodError(f"not a month YYYY-MM: {text!r} (the month must be 01-12)")
    _check_year(year, text)
    following = date(year + month // 12, month % 12 + 1, 1)
    return Period(
        datetime(year, month, 1), datetime.combine(following, datetime.min.time()), True,
        f"{year:04d}-{month:02d}",
    )


def week_period(text: str) -> Period:
    """``YYYY-Www``: each store's local ISO week, Monday 00:00 to the next Monday 00:00."""
    match = WEEK_PATTERN.fullmatch(text.strip())
    if not match:
        raise PeriodError(f"not an ISO week YYYY-Www: {text!r}")
    year, week = int(match[1]), int(match[2])
    _check_year(year, text)
    try:
        monday = date.fromisocalendar(year, week, 1)
    except ValueError as exc:
        raise PeriodError(f"not an ISO week YYYY-Www: {text!r} ({year} has no week {week})") \
            from exc
    start = datetime.combine(monday, datetime.min.time())
    return Period(start, start + timedelta(days=7), True, f"{year:04d}-W{week:02d}")


def requested_period(
    since: datetime | None,
    until: datetime | None,
    month: str | None,
    week: str | None,
    names: tuple[str, str, str, str] = ("from", "to", "month", "week"),
) -> Period:
    """The one period a request gives (the CLI's options, the API's parameters, named by
    ``names``): ``since`` and ``until`` (UTC instants), a month or an ISO week; PeriodError
    saying what is wrong otherwise."""
    from_name, to_name, month_name, week_name = names
    chosen = [
        name for name, given in (
            (f"{from_name}/{to_name}", since is not None or until is not None),
            (month_name, month is not None),
            (week_name, week is not None),
        ) if given
    ]
    if len(chosen) != 1:
        raise PeriodError(
            f"give one period: {from_name} and {to_name} (UTC instants), {month_name} YYYY-MM "
            f"or {week_name} YYYY-Www" + (f" (not {' and '.join(chosen)})" if chosen else "")
        )
    if month is not None:
        return month_period(month)
    if week is not None:
        return week_period(week)
    if since is None or until is None:
        raise PeriodError(f"give {from_name} and {to_name} together")
    start, end = as_naive_utc(since), as_naive_utc(until)
    if end <= start:
        raise PeriodError(
            f"{to_name} ({end.isoformat(sep=' ')} UTC) must be after {from_name} "
            f"({start.isoformat(sep=' ')} UTC)"
        )
    return utc_period(start, end)


def local_days(period: Period, as_of: datetime | None = None) -> list[Period]:
    """The local days of a local period (a month's days: what the month's figures add up
    from), each as of its own end, or all as of ``as_of``."""
    if not period.local:
        raise PeriodError("only a local period is made of local days")
    days = []
    day = period.start
    while day < period.end:
        following = min(day + timedelta(days=1), period.end)
        days.append(Period(day, following, True, day.date().isoformat(), as_of))
        day = following
    return days


def target_millionths(target_pct: float) -> int:
    """A target in millionths of a percent, so that availability is compared on integers."""
    target = Decimal(str(target_pct))
    if not Decimal(0) <= target <= Decimal(100):
        raise PeriodError(f"a target is a percentage within 0-100, not {target_pct!r}")
    return int((target * 1_000_000).to_integral_value(ROUND_HALF_UP))


@dataclass(frozen=True)
class SlaRun:
    """What ``compute_sla`` computed: the periods (their ids are their positions), the latest
    poll they were cut at, the target."""

    periods: tuple[Period, ...]
    latest_poll: datetime
    target_pct: float


def compute_sla(
    con: duckdb.DuckDBPyConnection,
    periods: Sequence[Period],
    store_ids: Sequence[str] | None = None,
    *,
    target_pct: float = DEFAULT_TARGET_PCT,
    latest: datetime | None = None,
    polls_per_chunk: int | None = None,
    use_settled: bool = True,
) -> SlaRun:
    """Fill the temp table ``sla_results`` (period_id, store_key, store_id, period_start,
    period_end, business_us, uptime_us, downtime_us, incidents, longest_incident_us,
    incident_us, availability_pct, target_met) for every period and store, and
    ``sla_incidents`` (period_id, store_key, incident_start_us, incident_end_us, business_us).

    ``store_ids`` limits the stores (unknown ids give no rows); ``latest`` is the latest poll
    the periods are cut at (default: the newest stored; a shard passes the newest of all
    shards). ``use_settled`` False reads every period from the polls, never from the settled
    days (the check that the settled days are right). See ``period_chunks``.
    """
    periods = tuple(periods)
    if not periods:
        raise PeriodError("no period to compute")
    millionths = target_millionths(target_pct)  # a wrong target fails before any work
    latest = latest_poll(con) if latest is None else as_naive_utc(latest)
    if latest is None:
        raise NoPollsError("no polls are loaded yet: ingest a store-status file first")
    scope_report_stores(con, latest, store_ids)
    chunks = period_chunks(
        con, periods, latest, polls_per_chunk=polls_per_chunk, use_settled=use_settled
    )
    for step, _ in enumerate(chunks):
        for table in ("sla_results", "sla_incidents"):
            if step == 0:
                con.execute(f"CREATE OR REPLACE TEMP TABLE {table}_of_chunks AS FROM {table}")
            else:
                con.execute(f"INSERT INTO {table}_of_chunks FROM {table}")
    for table in ("sla_results", "sla_incidents"):
        con.execute(f"CREATE OR REPLACE TEMP TABLE {table} AS FROM {table}_of_chunks")
        con.execute(f"DROP TABLE {table}_of_chunks")
    con.execute(sql("sla_target"), {"target_millionths": millionths})
    return SlaRun(periods, latest, target_pct)


@dataclass(frozen=True)
class Narrowing:
    """SQL run in each chunk once its store-periods are known, before any poll is read: it may
    drop rows of ``sla_store_periods`` (the settlement keeps only the days it can settle)."""

    statement: str
    params: dict[str, object]


def period_chunks(
    con: duckdb.DuckDBPyConnection,
    periods: Sequence[Period],
    latest: datetime,
    *,
    polls_per_chunk: int | None = None,
    use_settled: bool = True,
    narrowing: Narrowing | None = None,
) -> Iterator[None]:
    """Compute the periods for the stores of the temp table ``report_stores``
    (``scope_report_stores``), cut at ``latest``, one chunk of stores after another: at each
    step the temp tables ``sla_results`` (without the target) and ``sla_incidents`` (and the
    timelines, ``sla_sequences``, ``sla_values``, ``sla_down_pieces``) hold that chunk's.

    A store-period takes the settled days (table ``sla_days``, engine/settled.py) that tile it
    from its start, and reads only the rest from the polls: a calendar month is about 30
    small rows per store and its last day or two of polls. Stores are grouped by where their
    polls are needed from (so that the stores with nothing settled do not make the others read
    the whole period), and each group is computed in chunks of consecutive store keys holding
    about ``polls_per_chunk`` polls of its span (default: sized from the connection's memory
    limit, engine/chunks.py), so that memory follows the chunk, not the fleet. A store's
    results do not depend on the others', so they are the same whatever the grouping.
    """
    span_from, span_to = define_periods(con, periods)
    use_settled = ensure_settled_tables(con) and use_settled
    con.execute("CREATE OR REPLACE TEMP TABLE sla_group_scope AS FROM report_stores")
    for group_from in _settled_groups(con, use_settled, span_from, span_to):
        for _ in store_chunks(
            con, "report_stores", group_from - LOOKBACK_MARGIN, min(span_to, latest),
            polls_per_chunk,
        ):
            _compute_chunk(con, latest, use_settled, narrowing)
            yield
    con.execute("DROP TABLE sla_group_scope")


def define_periods(
    con: duckdb.DuckDBPyConnection, periods: Sequence[Period]
) -> tuple[datetime, datetime]:
    """The temp table ``sla_period_specs`` (period_id, period_from, period_to, is_local,
    as_of_at, as_of_local) and the zone offsets around the periods, for sla_periods.sql;
    returns the UTC span the periods can reach into."""
    con.execute(
        "CREATE OR REPLACE TEMP TABLE sla_period_specs AS "
        "SELECT unnest(range(len($starts)))::INTEGER AS period_id, unnest($starts) AS period_from, "
        "unnest($ends) AS period_to, unnest($local) AS is_local, "
        "unnest($as_ofs::TIMESTAMP[]) AS as_of_at, unnest($as_of_local) AS as_of_local",
        {
            "starts": [p.start for p in periods],
            "ends": [p.end for p in periods],
            "local": [p.local for p in periods],
            "as_ofs": [None if p.as_of is None else as_naive_utc(p.as_of) for p in periods],
            "as_of_local": [p.as_of_local for p in periods],
        },
    )
    # local bounds are within a day of the same reading in UTC
    span_from = min(p.start for p in periods) - timedelta(days=1)
    span_to = max(p.end for p in periods) + timedelta(days=1)
    prepare_zone_offsets(con, span_from, span_to)
    return span_from, span_to


# A group of stores this small is computed with the group before it (whose polls reach back
# further) rather than alone: a group's fixed costs are worth more than its polls.
SMALL_GROUP_STORES = 500


def merge_small_groups(counts: Sequence[tuple[date, int]]) -> list[tuple[date, date]]:
    """Groups of stores by the date their polls are read from (sorted, with their store
    counts) as ranges of dates: a group of fewer than SMALL_GROUP_STORES stores joins the one
    before it, which reads from earlier."""
    merged: list[tuple[date, date]] = []
    for day, stores in counts:
        if merged and stores < SMALL_GROUP_STORES:
            merged[-1] = (merged[-1][0], day)
        else:
            merged.append((day, day))
    return merged


def _settled_groups(
    con: duckdb.DuckDBPyConnection, use_settled: bool, span_from: datetime, span_to: datetime
) -> Iterator[datetime]:
    """Narrow ``report_stores`` to one group of the stores of ``sla_group_scope`` after
    another, yielding the date from which each group's polls are read: the stores whose settled
    days (``sla_days_span``) reach into the span read from about where those stop, the others
    from the span's start. An estimate for grouping only: each chunk finds its stores' exact
    start (sla_settled_prefix.sql)."""
    first_day, last_day = span_from.date(), span_to.date()
    if not use_settled:
        yield span_from
        return
    con.execute(
        """
        CREATE OR REPLACE TEMP TABLE sla_group_reads AS
        SELECT
            scope.store_key,
            CASE WHEN span.first_date <= $first_day
                 THEN least(greatest(span.next_date, $first_day), $last_day)
                 ELSE $first_day END AS reads_from
        FROM sla_group_scope AS scope
        LEFT JOIN sla_days_span AS span USING (store_key)
        """,
        {"first_day": first_day, "last_day": last_day},
    )
    groups = con.execute(
        "SELECT reads_from, count(*) FROM sla_group_reads GROUP BY reads_from ORDER BY reads_from"
    ).fetchall()
    for reads_from, reads_to in merge_small_groups(groups or [(first_day, 0)]):
        con.execute(
            "CREATE OR REPLACE TEMP TABLE report_stores AS SELECT scope.* "
            "FROM sla_group_scope AS scope JOIN sla_group_reads USING (store_key) "
            "WHERE reads_from BETWEEN $reads_from AND $reads_to",
            {"reads_from": reads_from, "reads_to": reads_to},
        )
        yield datetime.combine(reads_from, datetime.min.time())


def _compute_chunk(
    con: duckdb.DuckDBPyConnection,
    latest: datetime,
    use_settled: bool,
    narrowing: Narrowing | None,
) -> None:
    """``sla_results`` (without the target) and ``sla_incidents`` of the stores of
    ``report_stores``."""
    con.execute(
        sql("sla_periods"), {"latest_poll": latest, "default_timezone": DEFAULT_TIMEZONE}
    )
    if narrowing is not None:
        con.execute(narrowing.statement, narrowing.params)
    run_script(con, "sla_settled_prefix", {"use_settled": use_settled})
    con.execute(
        "DELETE FROM report_stores WHERE store_key NOT IN "
        "(SELECT store_key FROM sla_store_periods)"
    )
    con.execute(
        "CREATE OR REPLACE TEMP TABLE report_as_of AS "
        "SELECT DISTINCT as_of FROM sla_store_periods"
    )
    first_start, first_as_of, last_as_of = con.execute(
        "SELECT min(counted_from), min(as_of) FILTER (WHERE as_of > counted_from), max(as_of) "
        "FROM sla_store_periods"
    ).fetchone()
    if first_start is None:  # no store to report: empty results of the right shape
        first_start = last_as_of = latest
    # The report's look-back: the polls from a margin before the first part read from the
    # polls on; a store with an in-hours poll no later than the earliest as-of (and a margin
    # after the first start) needs nothing older, the others are searched back
    # (engine/report.py).
    horizon = first_start - LOOKBACK_MARGIN
    nearest_from = first_start if first_as_of is None else min(
        first_start, first_as_of - LOOKBACK_MARGIN
    )
    build_timelines(con, horizon, max(last_as_of, first_start), nearest_from)
    for step in ("sla_values", "sla_incidents", "sla_results"):
        run_script(con, step)


SETTLED_TABLES = {
    "sla_days": "store_key INTEGER, local_date DATE, day_start TIMESTAMP, day_end TIMESTAMP, "
    "business_us BIGINT, uptime_us BIGINT, all_polls BOOLEAN, depends_from TIMESTAMP, "
    "determined_by TIMESTAMP",
    "sla_day_downtime": "store_key INTEGER, local_date DATE, start_us BIGINT, end_us BIGINT, "
    "business_us BIGINT",
    "sla_days_span": "store_key INTEGER, first_date DATE, next_date DATE",
}


def ensure_settled_tables(con: duckdb.DuckDBPyConnection) -> bool:
    """Whether the database has settled days to read; a file of an older version opened
    read-only has none, and gets empty temp tables of their shape instead."""
    present = {
        row[0] for row in con.execute(
            "SELECT table_name FROM duckdb_tables() WHERE table_name IN $names "
            "UNION SELECT view_name FROM duckdb_views() WHERE view_name IN $names",
            {"names": list(SETTLED_TABLES)},
        ).fetchall()
    }
    for table, columns in SETTLED_TABLES.items():
        if table not in present:
            con.execute(f"CREATE TEMP TABLE {table} ({columns})")
    return bool(present)


def apply_target(con: duckdb.DuckDBPyConnection, target_pct: float) -> None:
    """Set ``target_met`` of ``sla_results`` for another target (stored results too)."""
    con.execute(sql("sla_target"), {"target_millionths": target_millionths(target_pct)})


def sla_micros(con: duckdb.DuckDBPyConnection, period_id: int | None = None) -> pd.DataFrame:
    """``sla_results`` as it is (integer microseconds), sorted by period and store_id."""
    return con.execute(
        "SELECT * FROM sla_results WHERE $period_id IS NULL OR period_id = $period_id "
        "ORDER BY period_id, store_id",
        {"period_id": period_id},
    ).df()


def sla_frame(con: duckdb.DuckDBPyConnection, period_id: int = 0) -> pd.DataFrame:
    """One period of ``sla_results`` with the CSV's columns, unrounded (hours, minutes,
    percent; NaN where the CSV is empty), sorted by store_id."""
    micros = sla_micros(con, period_id)
    frame = pd.DataFrame({
        "store_id": micros["store_id"].astype(str),
        "period_start": micros["period_start"],
        "period_end": micros["period_end"],
        "business_hours": micros["business_us"] / HOUR_US,
        "uptime_hours": micros["uptime_us"] / HOUR_US,
        "downtime_hours": micros["downtime_us"] / HOUR_US,
        "availability_pct": micros["availability_pct"].astype(float),
        "incidents": micros["incidents"].astype(int),
        "longest_incident_minutes": micros["longest_incident_us"] / MINUTE_US,
        "mean_time_to_recover_minutes": (
            micros["incident_us"] / micros["incidents"].where(micros["incidents"] > 0)
        ) / MINUTE_US,
        "target_met": micros["target_met"],
    })
    return frame[SLA_COLUMNS].reset_index(drop=True)


def sla_incident_frame(
    con: duckdb.DuckDBPyConnection, period_id: int = 0, store_ids: Sequence[str] | None = None
) -> pd.DataFrame:
    """The incidents of one period of ``sla_incidents`` (of some stores, or all): store_id,
    start and end (naive UTC, cut to the period) and the business minutes each covers
    (unrounded), in order of store_id and start."""
    return con.execute(
        """
        SELECT
            stores.store_id,
            make_timestamp(incident_start_us) AS incident_start,
            make_timestamp(incident_end_us) AS incident_end,
            sla_incidents.business_us / 60000000 AS business_minutes
        FROM sla_incidents
        JOIN sla_results AS stores USING (period_id, store_key)
        WHERE period_id = $period_id
          AND ($store_ids IS NULL OR stores.store_id IN (SELECT unnest($store_ids::VARCHAR[])))
        ORDER BY stores.store_id, incident_start_us
        """,
        {"period_id": period_id, "store_ids": None if store_ids is None else list(store_ids)},
    ).df()


@dataclass(frozen=True)
class SlaSummary:
    stores: int
    stores_below_target: int  # with business time and an availability under the target
    stores_without_business_time: int
    availability_pct: float | None  # the fleet's: total uptime / total business time


def sla_summary(con: duckdb.DuckDBPyConnection, period_id: int = 0) -> SlaSummary:
    stores, below, without, share = con.execute(
        "SELECT count(*), count(*) FILTER (WHERE NOT target_met), "
        "count(*) FILTER (WHERE business_us = 0), "
        "100 * sum(uptime_us) / nullif(sum(business_us), 0) FROM sla_results "
        "WHERE period_id = ?",
        [period_id],
    ).fetchone()
    return SlaSummary(stores, below, without, None if share is None else float(share))


def export_sla_csv(
    con: duckdb.DuckDBPyConnection, out_path: Path | str, period_id: int = 0
) -> Path:
    """One period of ``sla_results`` as the CSV of docs/semantics.md §2.17, written under a
    temporary name and renamed."""
    out_path = Path(out_path)
    query = sql("sla_csv").replace("$period_id", str(int(period_id)))
    with atomic_target(out_path) as temporary:
        con.execute(f"COPY ({query}) TO '{temporary}' (HEADER, DELIMITER ',')")
        with temporary.open("rb+") as handle:  # DuckDB ends a header without rows bare
            handle.seek(0, 2)
            if handle.tell():
                handle.seek(-1, 2)
                if handle.read(1) != b"\n":
                    handle.write(b"\n")
    return out_path


@dataclass(frozen=True)
class WrittenSla:
    path: Path
    period: Period
    latest_poll: datetime
    summary: SlaSummary


def write_sla_csv(
    con: duckdb.DuckDBPyConnection,
    out_path: Path | str,
    period: Period,
    store_ids: Sequence[str] | None = None,
    *,
    target_pct: float = DEFAULT_TARGET_PCT,
) -> WrittenSla:
    """Compute one period's SLA and write its CSV."""
    run = compute_sla(con, [period], store_ids, target_pct=target_pct)
    path = export_sla_csv(con, out_path)
    return WrittenSla(path, period, run.latest_poll, sla_summary(con))


@contextmanager
def sla_database(
    shard_paths: Sequence[Path],
    *,
    limits: ResourceLimits | None = None,
    wait_seconds: float = 0.0,
) -> Iterator[duckdb.DuckDBPyConnection]:
    """The stores' database(s) to compute periods on, read-only: one file, or the shards seen as
    one (``compute_sla`` only writes temp tables). While a writer holds the one file, retries
    for ``wait_seconds``, then raises duckdb.IOException."""
    if len(shard_paths) > 1:
        con = union_connection(shard_paths, limits)
        try:
            yield con
        finally:
            con.close()
        return
    with database(
        shard_paths[0], read_only=True, wait_seconds=wait_seconds, limits=limits
    ) as con:
        yield con


@dataclass(frozen=True)
class SavedSla:
    """What a saved period file says of itself (``save_sla``)."""

    name: str
    period_from: datetime
    period_to: datetime
    local: bool
    latest_poll: datetime
    target_pct: float
    saved_at: datetime
    stores: int


def save_sla(
    con: duckdb.DuckDBPyConnection, path: Path | str, run: SlaRun, period_id: int = 0
) -> Path:
    """One computed period (its ``sla_results`` and ``sla_incidents``) as a DuckDB file, written
    under a temporary name and renamed, so that a reader sees the old file or the new one. A
    saved period is served without the stores' database (``load_sla``)."""
    period = run.periods[period_id]
    path = Path(path)
    with atomic_target(path) as temporary:
        temporary.unlink()  # DuckDB creates its own file
        con.execute(f"ATTACH '{temporary}' AS saved_sla (READ_WRITE)")
        try:
            con.execute(
                "CREATE TABLE saved_sla.sla_results AS "
                "SELECT * EXCLUDE (period_id), 0 AS period_id FROM sla_results "
                "WHERE period_id = $period_id",
                {"period_id": period_id},
            )
            con.execute(
                "CREATE TABLE saved_sla.sla_incidents AS "
                "SELECT * EXCLUDE (period_id), 0 AS period_id FROM sla_incidents "
                "WHERE period_id = $period_id",
                {"period_id": period_id},
            )
            con.execute(
                "CREATE TABLE saved_sla.sla_manifest AS SELECT $name AS name, "
                "$period_from::TIMESTAMP AS period_from, $period_to::TIMESTAMP AS period_to, "
                "$local AS local, $latest_poll::TIMESTAMP AS latest_poll, "
                "$target_pct::DOUBLE AS target_pct, "
                "(now() AT TIME ZONE 'UTC')::TIMESTAMP AS saved_at, "
                "(SELECT count(*) FROM saved_sla.sla_results) AS stores",
                {
                    "name": period.name, "period_from": period.start,
                    "period_to": period.end, "local": period.local,
                    "latest_poll": run.latest_poll, "target_pct": run.target_pct,
                },
            )
        finally:
            con.execute("DETACH saved_sla")
    return path


def saved_month_path(folder: Path | str, month: str) -> Path:
    """Where a saved month (``YYYY-MM``) lives in ``folder``."""
    return Path(folder) / f"month-{month}.duckdb"


def load_sla(
    path: Path | str, limits: ResourceLimits | None = None
) -> tuple[duckdb.DuckDBPyConnection, SavedSla]:
    """An in-memory connection holding a saved period as ``sla_results`` and ``sla_incidents``
    (period 0), which ``sla_frame``, ``sla_summary``, ``export_sla_csv``, ``apply_target`` and
    ``sla_incident_frame`` read; and what the file says of itself. The caller closes it."""
    con = connect_memory(limits)
    try:
        con.execute(f"ATTACH '{Path(path)}' AS saved_sla (READ_ONLY)")
        con.execute("CREATE TEMP TABLE sla_results AS SELECT * FROM saved_sla.sla_results")
        con.execute("CREATE TEMP TABLE sla_incidents AS SELECT * FROM saved_sla.sla_incidents")
        row = con.execute("SELECT * FROM saved_sla.sla_manifest").fetchone()
        con.execute("DETACH saved_sla")
    except BaseException:
        con.close()
        raise
    return con, SavedSla(*row)


def keep_sla_stores(con: duckdb.DuckDBPyConnection, store_ids: Sequence[str]) -> None:
    """Drop every other store from ``sla_results`` and ``sla_incidents`` (a loaded saved period
    asked for some stores: a store's rows do not depend on which others were computed)."""
    params = {"store_ids": list(store_ids)}
    con.execute(
        "DELETE FROM sla_incidents WHERE (period_id, store_key) NOT IN (SELECT (period_id, "
        "store_key) FROM sla_results WHERE store_id IN (SELECT unnest($store_ids::VARCHAR[])))",
        params,
    )
    con.execute(
        "DELETE FROM sla_results WHERE store_id NOT IN (SELECT unnest($store_ids::VARCHAR[]))",
        params,
    )


def poll_span(con: duckdb.DuckDBPyConnection) -> tuple[datetime, datetime] | None:
    """The first and the latest poll stored (naive UTC), or None without polls: the months
    there is data for."""
    first, latest = con.execute(
        "SELECT min(coalesce(first_poll, last_poll)), max(last_poll) FROM stores"
    ).fetchone()
    return None if latest is None else (first, latest)


# --- a saved month: its figures, and its days (the monthly_sla asset and its check) -------------


@dataclass(frozen=True)
class SlaProgress:
    """Where each store's period stands at the latest poll it was cut at."""

    ended: int  # its end is before the latest poll: the period is whole
    cut: int  # still open: counted up to the latest poll
    not_started: int  # starts after the latest poll: nothing counted yet


def sla_progress(
    con: duckdb.DuckDBPyConnection, latest: datetime, period_id: int = 0
) -> SlaProgress:
    """How many stores of ``sla_results`` have their period ended, cut at ``latest`` or not
    begun: a month settled right after it ended in UTC is whole for the stores east of UTC
    only."""
    ended, cut, not_started = con.execute(
        "SELECT count(*) FILTER (WHERE period_end < $latest), "
        "count(*) FILTER (WHERE period_end >= $latest AND period_end > period_start), "
        "count(*) FILTER (WHERE period_end >= $latest AND period_end = period_start) "
        "FROM sla_results WHERE period_id = $period_id",
        {"latest": as_naive_utc(latest), "period_id": period_id},
    ).fetchone()
    return SlaProgress(ended, cut, not_started)


def sla_worst(
    con: duckdb.DuckDBPyConnection, limit: int = 10, period_id: int = 0
) -> pd.DataFrame:
    """The stores with business time and the lowest availability (then the most downtime),
    rounded for reading: store_id, availability_pct, business_hours, downtime_hours,
    incidents, longest_incident_minutes."""
    return con.execute(
        "SELECT store_id, round(availability_pct, 2)::DOUBLE AS availability_pct, "
        "round(business_us / 3600000000, 2) AS business_hours, "
        "round(downtime_us / 3600000000, 2) AS downtime_hours, incidents, "
        "round(longest_incident_us / 60000000, 2) AS longest_incident_minutes "
        "FROM sla_results WHERE period_id = $period_id AND business_us > 0 "
        "ORDER BY availability_pct, downtime_us DESC, store_id LIMIT $limit",
        {"period_id": period_id, "limit": limit},
    ).df()


def days_as_seen(period: Period) -> list[Period]:
    """The local days of a local period as the period saw them: each as of the period's end in
    the store's zone (then cut at the latest poll), so that they add up to the period exactly;
    days taken as of a later instant would use the polls after the period's end (§2.17)."""
    return [
        replace(day, as_of=period.end, as_of_local=True) for day in local_days(period)
    ]


@dataclass(frozen=True)
class DaysComparison:
    stores: int  # the stores of the saved period compared
    mismatches: int
    sample: pd.DataFrame  # a few mismatching stores: the period's and the days' values


def compare_with_days(
    con: duckdb.DuckDBPyConnection, saved: pd.DataFrame, sample_size: int = 5
) -> DaysComparison:
    """Per store of ``saved`` (a period's ``sla_micros``), its business time, uptime and
    downtime against the sums of its days in ``sla_results`` (``compute_sla`` of
    ``days_as_seen``), to the microsecond. A store the days do not report is a mismatch."""
    con.register("saved_period_rows", saved[
        ["store_id", "business_us", "uptime_us", "downtime_us"]
    ])
    try:
        con.execute(sql("sla_days_compared"))
    finally:
        con.unregister("saved_period_rows")
    mismatch = (
        "days_business_us IS NULL OR period_business_us <> days_business_us "
        "OR period_uptime_us <> days_uptime_us OR period_downtime_us <> days_downtime_us"
    )
    stores, mismatches = con.execute(
        f"SELECT count(*), count(*) FILTER (WHERE {mismatch}) FROM sla_days_compared"
    ).fetchone()
    sample = con.execute(
        f"SELECT * FROM sla_days_compared WHERE {mismatch} ORDER BY store_id LIMIT ?",
        [sample_size],
    ).df()
    return DaysComparison(stores, mismatches, sample)
