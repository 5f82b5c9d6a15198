"""How one store's numbers were made (docs/semantics.md §2.15): its week as of an instant, with
the business windows (and the special dates that replaced weekly rows), the polls (used or not,
and why), the status they interpolate to, and the report's values, which the windows and runs
add up to.

The values come from the report engine itself (``compute_reports`` for this one store, which
gives exactly its row of the full report); the timeline reads the temp tables that computation
leaves, so it shows what the report used rather than a second interpretation of the data.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote
from zoneinfo import ZoneInfo

import duckdb
import pandas as pd

from storemon_pipeline.engine.db import ResourceLimits, database, run_script, sql
from storemon_pipeline.engine.history import ReportSource, partition_key, report_source
from storemon_pipeline.engine.ingest import is_valid_store_id
from storemon_pipeline.engine.instants import as_aware_utc, as_naive_utc, iso
from storemon_pipeline.engine.report import WEEK, compute_reports, resolve_as_of
from storemon_pipeline.engine.shards import shard_of
from storemon_pipeline.engine.state import read_latest_poll
from storemon_pipeline.engine.zones import DEFAULT_TIMEZONE

DAY_NAMES = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]
PERIODS = {"hour": timedelta(hours=1), "day": timedelta(days=1), "week": WEEK}
UNUSED_OUTSIDE_HOURS = "outside business hours"


class MalformedStoreIdError(ValueError):
    """Not a store id the ingest accepts."""


class UnknownStoreError(LookupError):
    """No poll of this store was ever loaded."""


@dataclass(frozen=True)
class Interval:
    start: datetime  # naive UTC
    end: datetime


@dataclass(frozen=True)
class StatusInterval(Interval):
    active: bool


@dataclass(frozen=True)
class Poll:
    ts: datetime
    active: bool
    used: bool


@dataclass(frozen=True)
class PeriodTotals:
    start: datetime
    end: datetime
    business_us: int
    uptime_us: int


@dataclass(frozen=True)
class HoursRow:
    day_of_week: int  # 0 = Monday
    start_sec: int
    end_sec: int  # 86400 for 24:00; <= start_sec runs overnight


@dataclass(frozen=True)
class SpecialWindow:
    start_sec: int
    end_sec: int  # 86400 for 24:00; <= start_sec runs into the next date


@dataclass(frozen=True)
class SpecialDate:
    """A local date with special hours (docs/semantics.md §2.16): these windows instead of the
    weekday's weekly rows."""

    date: date  # the store's local date
    windows: list[SpecialWindow]  # empty: closed all day
    reasons: list[str]  # the rows' reasons, distinct, closed rows first, then by start


@dataclass(frozen=True)
class StoreTimeline:
    store_id: str
    as_of: datetime
    timezone: str
    timezone_defaulted: bool
    business_hours: list[HoursRow]  # empty: open 24x7
    special_dates: list[SpecialDate]  # of the week's local days and the day before
    business_windows: list[Interval]  # clipped to the week
    polls: list[Poll]
    all_polls: bool | None  # the sequence used (§2.7): None when the store is not reported
    status_runs: list[StatusInterval]  # cover the week from the first poll's span on
    segments: list[StatusInterval]  # business time split by status
    periods: dict[str, PeriodTotals]  # exact, from the report engine
    values: dict[str, float] | None  # the six CSV numbers; None: no poll at or before as_of

    @property
    def week(self) -> Interval:
        return Interval(self.as_of - WEEK, self.as_of)

    def local_days(self) -> list[tuple[date, datetime, datetime]]:
        """The store's local calendar days that touch the week: (date, start, end) in UTC."""
        zone = self.timezone
        first = _local(self.week.start, zone).date()
        last = _local(self.week.end - timedelta(microseconds=1), zone).date()
        days = []
        for offset in range((last - first).days + 1):
            day = first + timedelta(days=offset)
            days.append((day, _utc_of_local(day, zone), _utc_of_local(day + timedelta(1), zone)))
        return days

    def replaced_weekly(self, special: SpecialDate) -> list[HoursRow]:
        """The weekly rows the special date does not have: its weekday's."""
        return [row for row in self.business_hours if row.day_of_week == special.date.weekday()]

    def as_json(
        self, source: ReportSource | None = None, dagster_url: str | None = None
    ) -> dict[str, Any]:
        """The answer of ``GET /stores/{id}/timeline`` and ``storemon explain --json``: with the
        stored partition the numbers are those of, linked to Dagster's UI when its URL is
        known."""
        zone = self.timezone

        def local(value: datetime) -> str:
            return _local(value, zone).isoformat()

        def weekly(row: HoursRow) -> dict[str, Any]:
            return {
                "day_of_week": row.day_of_week,
                "day": DAY_NAMES[row.day_of_week],
                "start_local": _clock(row.start_sec),
                "end_local": _clock(row.end_sec),
            }

        return {
            "store_id": self.store_id,
            "as_of": iso(self.as_of),
            "timezone": zone,
            "timezone_defaulted": self.timezone_defaulted,
            "open_24x7": not self.business_hours,
            "business_hours": [weekly(row) for row in self.business_hours],
            "special_dates": [
                {
                    "date": special.date.isoformat(),
                    "day": DAY_NAMES[special.date.weekday()],
                    "closed": not special.windows,
                    "windows": [
                        {"start_local": _clock(w.start_sec), "end_local": _clock(w.end_sec)}
                        for w in special.windows
                    ],
                    "reason": "; ".join(special.reasons) or None,
                    "replaced_weekly": [weekly(row) for row in self.replaced_weekly(special)],
                    "replaced_open_24x7": not self.business_hours,
                }
                for special in self.special_dates
            ],
            "week": {"start": iso(self.week.start), "end": iso(self.week.end)},
            "days": [
                {"date": day.isoformat(), "start_utc": iso(start), "end_utc": iso(end)}
                for day, start, end in self.local_days()
            ],
            "business_windows": [
                {
                    "start_utc": iso(w.start),
                    "end_utc": iso(w.end),
                    "start_local": local(w.start),
                    "end_local": local(w.end),
                }
                for w in self.business_windows
            ],
            "polls": [
                {
                    "ts": iso(p.ts),
                    "ts_local": local(p.ts),
                    "status": _status(p.active),
                    "used": p.used,
                    "unused_reason": None if p.used else UNUSED_OUTSIDE_HOURS,
                }
                for p in self.polls
            ],
            "sequence": None if self.all_polls is None
            else "all polls" if self.all_polls else "in-hours polls",
            "status_runs": [
                {"start": iso(r.start), "end": iso(r.end), "status": _status(r.active)}
                for r in self.status_runs
            ],
            "segments": [
                {"start": iso(s.start), "end": iso(s.end), "status": _status(s.active)}
                for s in self.segments
            ],
            "periods": {
                name: {
                    "start": iso(p.start),
                    "end": iso(p.end),
                    "business_seconds": p.business_us / 1e6,
                    "uptime_seconds": p.uptime_us / 1e6,
                    "downtime_seconds": (p.business_us - p.uptime_us) / 1e6,
                }
                for name, p in self.periods.items()
            },
            "values": self.values,
            "source": None if source is None else _source_json(source, dagster_url),
        }


def timeline_text(timeline: StoreTimeline, source: ReportSource | None = None) -> str:
    """``storemon explain``'s readable answer: the same facts as the JSON, as tables."""
    data = timeline.as_json(source)
    zone = data["timezone"] + (" (no time-zone row: the default)" if data["timezone_defaulted"]
                               else "")
    hours = "open 24x7 (no business-hours rows)" if data["open_24x7"] else ", ".join(
        f"{row['day'][:3]} {row['start_local'][:5]}-{row['end_local'][:5]}"
        for row in data["business_hours"]
    )
    lines = [
        f"store {timeline.store_id} as of {_utc_text(timeline.as_of)}",
        f"time zone   {zone}",
        f"hours       {hours} (local)",
        "source      " + ("no stored report partition has this as-of" if source is None else
                          f"report partition {data['source']['partition']}, "
                          f"run {data['source']['run_id']}"),
        "",
    ]
    if timeline.values is None:
        return "\n".join([*lines, "not in the report: no poll at or before the as-of"]) + "\n"
    periods = pd.DataFrame(
        [
            {
                "period": f"last {name}",
                "from (UTC)": _utc_text(period.start),
                "business": _duration(period.business_us),
                "uptime": _duration(period.uptime_us),
                "downtime": _duration(period.business_us - period.uptime_us),
                "report": f"{timeline.values[f'uptime_last_{name}']:.2f} up / "
                f"{timeline.values[f'downtime_last_{name}']:.2f} down "
                f"({'min' if name == 'hour' else 'h'})",
            }
            for name, period in timeline.periods.items()
        ]
    )

    def local(instant: datetime) -> str:
        return _local(instant, timeline.timezone).strftime("%a %Y-%m-%d %H:%M:%S")

    special = pd.DataFrame(
        [{"local date": f"{row['day'][:3]} {row['date']}",
          "hours": "closed" if row["closed"] else ", ".join(map(_span_text, row["windows"])),
          "reason": row["reason"] or "",
          "instead of": "open 24x7" if row["replaced_open_24x7"]
          else ", ".join(map(_span_text, row["replaced_weekly"])) or "closed (no weekly rows)"}
         for row in data["special_dates"]]
    )
    windows = pd.DataFrame(
        [{"local start": local(w.start), "local end": local(w.end),
          "UTC start": _utc_text(w.start), "UTC end": _utc_text(w.end)}
         for w in timeline.business_windows]
    )
    segments = pd.DataFrame(
        [{"start (UTC)": _utc_text(s.start), "end (UTC)": _utc_text(s.end),
          "length": _duration(_us(s.end - s.start)), "status": "up" if s.active else "down"}
         for s in timeline.segments]
    )
    polls = pd.DataFrame(
        [{"poll (UTC)": _utc_text(p.ts), "local": local(p.ts),
          "status": _status(p.active),
          "used": "yes" if p.used else f"no: {UNUSED_OUTSIDE_HOURS}"}
         for p in timeline.polls]
    )
    sections = [
        ("values (the report's row; uptime + downtime = business time)", periods),
        ("special dates (their rows replace the weekday's weekly rows)", special),
        ("business windows in the week", windows),
        ("business time by status (what the values add up from)", segments),
        (f"polls ({data['sequence']} used)", polls),
    ]
    for title, frame in sections:
        lines += [title, frame.to_string(index=False) if not frame.empty else "  (none)", ""]
    return "\n".join(lines)


def _status(active: bool) -> str:
    return "active" if active else "inactive"


def _span_text(row: dict[str, Any]) -> str:
    """A weekly or special row's local times, HH:MM; an end not after the start is the next
    day's."""
    start, end = row["start_local"], row["end_local"]
    return f"{start[:5]}-{end[:5]}" + (" (next day)" if end <= start else "")


def _utc_text(instant: datetime) -> str:
    return instant.isoformat(sep=" ") + " UTC"


def _us(delta: timedelta) -> int:
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def _duration(us: int) -> str:
    seconds = us / 1e6
    return f"{int(seconds // 3600)}:{int(seconds % 3600 // 60):02d}:{seconds % 60:09.6f}"


def explain_store(
    con: duckdb.DuckDBPyConnection, store_id: str, as_of: datetime | None = None
) -> StoreTimeline:
    """The timeline of ``store_id`` as of ``as_of`` (default: the latest poll). Raises
    MalformedStoreIdError, UnknownStoreError, NoPollsError."""
    if not is_valid_store_id(store_id):
        raise MalformedStoreIdError(f"{store_id!r} is not a store id the ingest accepts")
    found = con.execute("SELECT store_key FROM stores WHERE store_id = ?", [store_id]).fetchone()
    if found is None:
        raise UnknownStoreError(f"no poll of store {store_id} was ever loaded")
    (store_key,) = found
    as_of = resolve_as_of(con, as_of)
    week_start = as_of - WEEK
    zone, defaulted = _timezone(con, store_id)

    compute_reports(con, [as_of], [store_id])
    params = {"store_key": store_key, "week_start": week_start, "as_of": as_of}
    run_script(con, "explain_runs", params)
    reported = con.execute(
        "SELECT all_polls FROM store_reports WHERE store_key = ?", [store_key]
    ).fetchone()
    return StoreTimeline(
        store_id=store_id,
        as_of=as_of,
        timezone=zone,
        timezone_defaulted=defaulted,
        business_hours=[
            HoursRow(*row)
            for row in con.execute(
                "SELECT day_of_week, start_sec, end_sec FROM business_hours WHERE store_id = ? "
                "ORDER BY ALL",
                [store_id],
            ).fetchall()
        ],
        special_dates=_special_dates(con, store_id, week_start, as_of, zone),
        business_windows=[
            Interval(*row)
            for row in con.execute(
                "SELECT greatest(window_start, $week_start), least(window_end, $as_of) "
                "FROM report_windows WHERE store_key = $store_key "
                "AND window_end > $week_start AND window_start < $as_of ORDER BY window_start",
                {"store_key": store_key, "week_start": week_start, "as_of": as_of},
            ).fetchall()
        ],
        polls=[
            Poll(*row)
            for row in con.execute(
                sql("explain_polls"), {"store_key": store_key, "week_start": week_start}
            ).fetchall()
        ],
        all_polls=None if reported is None else reported[0],
        status_runs=_intervals(con, "store_runs"),
        segments=_intervals(con, "store_segments"),
        periods=_periods(con, store_key, as_of),
        values=_values(con, store_key, as_of),
    )


def read_store_timeline(
    state_dir: Path,
    db_paths: Sequence[Path],
    history_path: Path,
    store_id: str,
    as_of: datetime | None = None,
    *,
    wait_seconds: float,
    limits: ResourceLimits | None = None,
) -> tuple[StoreTimeline, ReportSource | None]:
    """The store's timeline from its database (its shard's among ``db_paths``, one per shard),
    read-only, and the stored report partition its numbers are those of (None if no partition
    has its as-of). The as-of defaults to the newest partition's, else the latest poll of all
    stores (``latest_poll.json`` in ``state_dir``). While a run writes a file, waits
    ``wait_seconds``."""
    if not is_valid_store_id(store_id):
        raise MalformedStoreIdError(f"{store_id!r} is not a store id the ingest accepts")
    as_of = None if as_of is None else as_naive_utc(as_of)
    source = report_source(history_path, as_of, wait_seconds)
    if as_of is None:
        # the newest partition's; else the newest poll of all shards (latest_poll.json)
        as_of = source.as_of if source is not None else read_latest_poll(state_dir)
    path = db_paths[shard_of(store_id, len(db_paths))]
    if not path.exists():
        raise UnknownStoreError(f"no poll of store {store_id} was ever loaded")
    with database(path, read_only=True, wait_seconds=wait_seconds, limits=limits) as con:
        timeline = explain_store(con, store_id, as_of)
    if source is not None and source.as_of != timeline.as_of:
        source = None
    return timeline, source


def _timezone(con: duckdb.DuckDBPyConnection, store_id: str) -> tuple[str, bool]:
    found = con.execute("SELECT timezone FROM timezones WHERE store_id = ?", [store_id]).fetchone()
    return (DEFAULT_TIMEZONE, True) if found is None else (found[0], False)


def _special_dates(
    con: duckdb.DuckDBPyConnection, store_id: str, week_start: datetime, as_of: datetime, zone: str
) -> list[SpecialDate]:
    """The store's special dates that can reach into the week: its local days, and the day
    before, whose overnight rows (special, or the weekly ones it replaced) run into it."""
    first = _local(week_start, zone).date() - timedelta(days=1)
    last = _local(as_of - timedelta(microseconds=1), zone).date()
    found: dict[date, SpecialDate] = {}
    for day, start_sec, end_sec, reason in con.execute(
        "SELECT local_date, start_sec, end_sec, reason FROM special_hours "
        "WHERE store_id = $store_id AND local_date BETWEEN $first AND $last "
        "ORDER BY local_date, start_sec NULLS FIRST, end_sec, reason",
        {"store_id": store_id, "first": first, "last": last},
    ).fetchall():
        special = found.setdefault(day, SpecialDate(day, [], []))
        window = None if start_sec is None else SpecialWindow(start_sec, end_sec)
        if window is not None and window not in special.windows:
            special.windows.append(window)
        if reason is not None and reason not in special.reasons:
            special.reasons.append(reason)
    return list(found.values())


def _intervals(con: duckdb.DuckDBPyConnection, table: str) -> list[StatusInterval]:
    return [
        StatusInterval(*row)
        for row in con.execute(
            f"SELECT make_timestamp(start_us), make_timestamp(end_us), is_active FROM {table} "
            "ORDER BY start_us"
        ).fetchall()
    ]


def _periods(
    con: duckdb.DuckDBPyConnection, store_key: int, as_of: datetime
) -> dict[str, PeriodTotals]:
    found = con.execute(
        "SELECT business_hour_us, uptime_hour_us, business_day_us, uptime_day_us, "
        "business_week_us, uptime_week_us FROM report_results WHERE store_key = ?",
        [store_key],
    ).fetchone() or (0,) * 6
    return {
        name: PeriodTotals(as_of - length, as_of, found[2 * i], found[2 * i + 1])
        for i, (name, length) in enumerate(PERIODS.items())
    }


def _values(
    con: duckdb.DuckDBPyConnection, store_key: int, as_of: datetime
) -> dict[str, float] | None:
    """The store's row of the report CSV, as numbers (formatted by the CSV's own macro)."""
    frame = con.execute(
        """
        SELECT unnest(csv_values(
            uptime_hour_us, uptime_day_us, uptime_week_us,
            business_hour_us, business_day_us, business_week_us
        ))
        FROM report_results
        WHERE as_of = $as_of AND store_key = $store_key
        """,
        {"as_of": as_of, "store_key": store_key},
    ).df()
    if frame.empty:
        return None
    return {name: float(value) for name, value in frame.iloc[0].items()}


def _source_json(source: ReportSource, dagster_url: str | None) -> dict[str, Any]:
    key = partition_key(source.partition_hour)
    return {
        "partition": key,
        "run_id": source.run_id,
        "dagster_run_url": None if dagster_url is None or source.run_id is None
        else f"{dagster_url}/runs/{source.run_id}",
        "dagster_partition_url": None if dagster_url is None
        else f"{dagster_url}/assets/uptime_report?view=partitions&partition={quote(key)}",
    }


def _clock(seconds: int) -> str:
    return f"{seconds // 3600:02d}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


def _local(instant: datetime, zone: str) -> datetime:
    return as_aware_utc(instant).astimezone(ZoneInfo(zone))


def _utc_of_local(day: date, zone: str) -> datetime:
    """The first instant at which the wall clock reads the day's midnight or later (as business
    hours are placed, docs/semantics.md §2.6)."""
    local = pd.Timestamp(day).tz_localize(zone, ambiguous=True, nonexistent="shift_forward")
    return local.tz_convert("UTC").tz_localize(None).to_pydatetime()
