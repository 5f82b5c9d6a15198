"""How one store's numbers were made (docs/semantics.md §2.15): its week as of an instant, with
the business windows (and the special dates that replaced weekly rows), the polls (used or not,
and why), the status they interpolate to, and the report's values, which the windows and runs
add up to.

The values come from the report engine itself (``compute_reports`` for this one store, which
gives exactly its row of the full report); the timeline reads the temp tables that computation
leaves, so it shows what the report used rather than a second interpretation of the data.
"""

from __future__ import annotations

import copy
import os
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from functools import lru_cache
from pathlib import Path
from typing import Any
from urllib.parse import quote
from zoneinfo import ZoneInfo

import duckdb
import pandas as pd

from storemon_pipeline.engine.db import ResourceLimits, database, sql
from storemon_pipeline.engine.history import ReportSource, partition_key, report_source
from storemon_pipeline.engine.ingest import is_valid_store_id
from storemon_pipeline.engine.instants import as_aware_utc, as_naive_utc
from storemon_pipeline.engine.readers import FileReader, Readers, ReportSources
from storemon_pipeline.engine.report import WEEK, compute_reports, resolve_as_of
from storemon_pipeline.engine.shards import shard_of
from storemon_pipeline.engine.state import read_latest_poll
from storemon_pipeline.engine.zones import DEFAULT_TIMEZONE

DAY_NAMES = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]
PERIODS = {"hour": timedelta(hours=1), "day": timedelta(days=1), "week": WEEK}
UNUSED_OUTSIDE_HOURS = "outside business hours"
# The most stores a batch of timelines computes together (TimelineBatches).
MAX_BATCH = 32
# Batches of one file computed at once, each on a thread and a cursor of its own (the API's
# readers run DuckDB on one thread per query): one per core of a small machine.
BATCH_RUNNERS = max(1, min(4, os.cpu_count() or 1))
# A batch starts beside a running one only with this many requests: a pass costs about 30
# stores' own work whatever its size (TimelineBatches).
PARALLEL_BATCH_MIN = 8


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
        tz = ZoneInfo(zone)

        def local(value: datetime) -> str:
            return value.replace(tzinfo=UTC).astimezone(tz).isoformat()

        def utc(value: datetime) -> str:  # the engine's naive UTC instant, with its offset
            return value.isoformat() + "+00:00"

        def weekly(row: HoursRow) -> dict[str, Any]:
            return {
                "day_of_week": row.day_of_week,
                "day": DAY_NAMES[row.day_of_week],
                "start_local": _clock(row.start_sec),
                "end_local": _clock(row.end_sec),
            }

        return {
            "store_id": self.store_id,
            "as_of": utc(self.as_of),
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
            "week": {"start": utc(self.week.start), "end": utc(self.week.end)},
            "days": [
                {"date": day.isoformat(), "start_utc": utc(start), "end_utc": utc(end)}
                for day, start, end in self.local_days()
            ],
            "business_windows": [
                {
                    "start_utc": utc(w.start),
                    "end_utc": utc(w.end),
                    "start_local": local(w.start),
                    "end_local": local(w.end),
                }
                for w in self.business_windows
            ],
            "polls": [
                {
                    "ts": utc(p.ts),
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
                {"start": utc(r.start), "end": utc(r.end), "status": _status(r.active)}
                for r in self.status_runs
            ],
            "segments": [
                {"start": utc(s.start), "end": utc(s.end), "status": _status(s.active)}
                for s in self.segments
            ],
            "periods": {
                name: {
                    "start": utc(p.start),
                    "end": utc(p.end),
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
    found = explain_stores(con, [store_id], as_of)
    if store_id not in found:
        raise UnknownStoreError(f"no poll of store {store_id} was ever loaded")
    return found[store_id]


def explain_stores(
    con: duckdb.DuckDBPyConnection, store_ids: Sequence[str], as_of: datetime | None = None
) -> dict[str, StoreTimeline]:
    """The timelines of several stores as of one instant (default: the latest poll), by store
    id; a store no poll of which was ever loaded is left out. Raises MalformedStoreIdError,
    NoPollsError.

    One pass of the report engine for all of them (``compute_reports`` with these stores: each
    store's rows are those of the full report, whatever stores it is computed with), then one
    read of each temp table it leaves for all of them: what concurrent requests share."""
    for store_id in store_ids:
        if not is_valid_store_id(store_id):
            raise MalformedStoreIdError(f"{store_id!r} is not a store id the ingest accepts")
    # the zones of the asked stores only: joined to every zone, the stores' side is not known
    # to be small and the whole zones table is hashed (at 100x, 0.4 s of a 0.5 s timeline)
    stores = con.execute(
        """
        WITH asked_stores AS (
            SELECT store_key, store_id
            FROM stores
            WHERE store_id IN (SELECT unnest($store_ids::VARCHAR[]))
        ),
        asked_zones AS (
            SELECT store_id, timezone FROM timezones SEMI JOIN asked_stores USING (store_id)
        )
        SELECT asked_stores.store_key, asked_stores.store_id, asked_zones.timezone
        FROM asked_stores
        LEFT JOIN asked_zones USING (store_id)
        """,
        {"store_ids": list(dict.fromkeys(store_ids))},
    ).fetchall()
    if not stores:
        return {}
    as_of = resolve_as_of(con, as_of)
    week_start = as_of - WEEK
    ids = [store_id for _, store_id, _ in stores]
    compute_reports(con, [as_of], ids)
    week = {"week_start": week_start, "as_of": as_of}
    by_key: dict[str, dict[Any, list]] = {
        kind: {} for kind in ("hours", "special", "window", "poll", "run", "segment")
    }
    # the stores' weekly rows and their special dates that can reach into the week (local
    # dates are within a day of UTC dates; each store's own are picked below)
    for store_id, kind, *row in con.execute(
        """
        SELECT store_id, 'hours' AS kind, day_of_week, NULL::DATE AS local_date, start_sec,
               end_sec, NULL AS reason
        FROM business_hours
        WHERE store_id IN (SELECT unnest($store_ids::VARCHAR[]))
        UNION ALL
        SELECT store_id, 'special', NULL, local_date, start_sec, end_sec, reason
        FROM special_hours
        WHERE store_id IN (SELECT unnest($store_ids::VARCHAR[]))
          AND local_date BETWEEN $week_start::DATE - 2 AND $as_of::DATE + 1
        ORDER BY store_id, kind, day_of_week, local_date, start_sec NULLS FIRST, end_sec, reason
        """,
        {"store_ids": ids, **week},
    ).fetchall():
        found = row[:1] + row[2:4] if kind == "hours" else row[1:]
        by_key[kind].setdefault(store_id, []).append(tuple(found))
    for store_key, kind, start, end, active, used in con.execute(
        sql("explain_weeks"), week
    ).fetchall():
        item = (start, active, used) if kind == "poll" else (
            (start, end) if kind == "window" else (start, end, active)
        )
        by_key[kind].setdefault(store_key, []).append(item)
    results = {
        row[0]: row[1:]
        for row in con.execute(
            """
            SELECT
                report_results.store_key,
                store_reports.all_polls,
                business_hour_us, uptime_hour_us, business_day_us, uptime_day_us,
                business_week_us, uptime_week_us,
                csv_values(
                    uptime_hour_us, uptime_day_us, uptime_week_us,
                    business_hour_us, business_day_us, business_week_us
                )
            FROM report_results
            LEFT JOIN store_reports USING (store_key)
            WHERE report_results.as_of = $as_of
            """,
            {"as_of": as_of},
        ).fetchall()
    }
    timelines = {}
    for store_key, store_id, timezone in stores:
        zone = timezone or DEFAULT_TIMEZONE
        reported = results.get(store_key)
        totals = reported[1:7] if reported is not None else (0,) * 6
        timelines[store_id] = StoreTimeline(
            store_id=store_id,
            as_of=as_of,
            timezone=zone,
            timezone_defaulted=timezone is None,
            business_hours=[HoursRow(*row) for row in by_key["hours"].get(store_id, [])],
            special_dates=_special_dates(
                by_key["special"].get(store_id, []), week_start, as_of, zone
            ),
            business_windows=[Interval(*row) for row in by_key["window"].get(store_key, [])],
            polls=[Poll(*row) for row in by_key["poll"].get(store_key, [])],
            all_polls=None if reported is None else reported[0],
            status_runs=[StatusInterval(*row) for row in by_key["run"].get(store_key, [])],
            segments=[StatusInterval(*row) for row in by_key["segment"].get(store_key, [])],
            periods={
                name: PeriodTotals(as_of - length, as_of, totals[2 * i], totals[2 * i + 1])
                for i, (name, length) in enumerate(PERIODS.items())
            },
            values=None if reported is None
            else {name: float(value) for name, value in reported[7].items()},
        )
    return timelines


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
    ``wait_seconds``. A process answering many requests uses ``StoreTimelines``."""
    path, as_of, source = _timeline_request(
        state_dir, db_paths, store_id, as_of,
        lambda at: report_source(history_path, at, wait_seconds),
    )
    with database(path, read_only=True, wait_seconds=wait_seconds, limits=limits) as con:
        timeline = explain_store(con, store_id, as_of)
    return timeline, _source_of(timeline, source)


class StoreTimelines:
    """Timelines as a process that answers many requests serves them (the API): each file held
    open by ``readers`` (engine/readers.py), the history's answer kept while the file is
    unchanged, and the timelines asked of a file at the same time computed together
    (``TimelineBatches``). The same answers as ``read_store_timeline``."""

    def __init__(
        self,
        readers: Readers,
        state_dir: Path,
        db_paths: Sequence[Path],
        history_path: Path,
        *,
        max_batch: int = MAX_BATCH,
    ) -> None:
        self.readers = readers
        self.state_dir = state_dir
        self.db_paths = list(db_paths)
        self.sources = ReportSources(history_path, wait_seconds=readers.wait_seconds)
        self.max_batch = max_batch
        self._batches: dict[Path, TimelineBatches] = {}
        self._lock = threading.Lock()

    def timeline(
        self, store_id: str, as_of: datetime | None = None, *, wait_seconds: float | None = None
    ) -> tuple[StoreTimeline, ReportSource | None]:
        """As ``read_store_timeline``; ``wait_seconds`` (default: the readers') while a run
        writes the file."""
        path, as_of, source = _timeline_request(
            self.state_dir, self.db_paths, store_id, as_of, self.sources.source
        )
        with self._lock:
            batches = self._batches.get(path)
            if batches is None:
                batches = self._batches[path] = TimelineBatches(
                    self.readers.reader(path), self.max_batch
                )
        timeline = batches.timeline(store_id, as_of, wait_seconds=wait_seconds)
        return timeline, _source_of(timeline, source)


def _timeline_request(
    state_dir: Path,
    db_paths: Sequence[Path],
    store_id: str,
    as_of: datetime | None,
    source_of: Callable[[datetime | None], ReportSource | None],
) -> tuple[Path, datetime | None, ReportSource | None]:
    """The store's file, the as-of to explain and the stored partition with that as-of."""
    if not is_valid_store_id(store_id):
        raise MalformedStoreIdError(f"{store_id!r} is not a store id the ingest accepts")
    as_of = None if as_of is None else as_naive_utc(as_of)
    source = source_of(as_of)
    if as_of is None:
        # the newest partition's; else the newest poll of all shards (latest_poll.json)
        as_of = source.as_of if source is not None else read_latest_poll(state_dir)
    path = db_paths[shard_of(store_id, len(db_paths))]
    if not path.exists():
        raise UnknownStoreError(f"no poll of store {store_id} was ever loaded")
    return path, as_of, source


def _source_of(timeline: StoreTimeline, source: ReportSource | None) -> ReportSource | None:
    return source if source is not None and source.as_of == timeline.as_of else None


@dataclass(eq=False)
class _Asked:
    """One request waiting for its timeline."""

    store_id: str
    as_of: datetime | None
    wait_seconds: float | None = None
    timeline: StoreTimeline | None = None
    error: BaseException | None = None
    done: bool = False


class TimelineBatches:
    """The timelines asked of one file at the same time, computed together.

    A timeline costs mostly what does not depend on its store: some twenty statements of the
    report engine, each planned and run however few rows it has (about 60 ms on the sample, and
    2 ms more per store). Requests that arrive while the file is busy wait for the next batch,
    which takes every request waiting with the oldest one's as-of (up to ``max_batch``
    stores) and runs ``explain_stores`` once for them, on the thread of one of the waiting
    requests: no thread of its own. A batch starts when none is running, or beside the running
    ones (up to ``runners`` at once, each on a cursor of its own) when at least
    ``parallel_min`` requests wait: enough to be worth a pass of its own. The file's reader
    lets a writer in between two batches."""

    def __init__(
        self,
        reader: FileReader,
        max_batch: int = MAX_BATCH,
        *,
        runners: int = BATCH_RUNNERS,
        parallel_min: int = PARALLEL_BATCH_MIN,
    ) -> None:
        self.reader = reader
        self.max_batch = max_batch
        self.runners = runners
        self.parallel_min = parallel_min
        self._cond = threading.Condition()
        self._waiting: list[_Asked] = []
        self._running = 0
        self.batches = 0  # how many ran (tests, the bench)

    def timeline(
        self, store_id: str, as_of: datetime | None, *, wait_seconds: float | None = None
    ) -> StoreTimeline:
        """The store's timeline, computed in the next batch (raises as ``explain_store``).
        ``wait_seconds``: how long the batch may wait for the file (default: the reader's)."""
        asked = _Asked(store_id, as_of, wait_seconds)
        with self._cond:
            self._waiting.append(asked)
        while True:
            with self._cond:
                while not asked.done and not self._may_start():
                    self._cond.wait()
                if asked.done:
                    break
                batch = self._take()
                self._running += 1
            try:
                self._run(batch)
            finally:
                with self._cond:
                    self._running -= 1
                    self.batches += 1
                    self._cond.notify_all()
        if asked.error is not None:
            # one exception per request: each thread raises (and annotates) its own
            raise _copy_of(asked.error) from asked.error
        return asked.timeline

    @property
    def running(self) -> int:
        """Batches being computed."""
        return self._running

    @property
    def waiting(self) -> int:
        """Requests waiting for a batch to take them."""
        with self._cond:
            return len(self._waiting)

    def _may_start(self) -> bool:
        """Whether a waiting request may start a batch now (under the lock)."""
        if not self._waiting:
            return False
        if not self._running:
            return True
        return self._running < self.runners and len(self._waiting) >= self.parallel_min

    def _take(self) -> list[_Asked]:
        """The oldest request and those waiting with the same as-of (under the lock)."""
        as_of = self._waiting[0].as_of
        batch, stores = [], set()
        for asked in self._waiting:
            if asked.as_of == as_of and (
                asked.store_id in stores or len(stores) < self.max_batch
            ):
                batch.append(asked)
                stores.add(asked.store_id)
        self._waiting = [asked for asked in self._waiting if asked not in batch]
        return batch

    def _run(self, batch: list[_Asked]) -> None:
        try:
            with self.reader.connection(wait_seconds=batch[0].wait_seconds) as con:
                found = explain_stores(con, [a.store_id for a in batch], batch[0].as_of)
        except Exception as exc:  # every request of the batch answers it
            for asked in batch:
                asked.error = exc
        else:
            for asked in batch:
                asked.timeline = found.get(asked.store_id)
                if asked.timeline is None:
                    asked.error = UnknownStoreError(
                        f"no poll of store {asked.store_id} was ever loaded"
                    )
        with self._cond:
            for asked in batch:
                asked.done = True


def _copy_of(error: BaseException) -> BaseException:
    try:
        return copy.copy(error)
    except Exception:
        return error


def _special_dates(
    rows: list[tuple], week_start: datetime, as_of: datetime, zone: str
) -> list[SpecialDate]:
    """The store's special dates that can reach into the week: its local days, and the day
    before, whose overnight rows (special, or the weekly ones it replaced) run into it.
    ``rows``: (local_date, start_sec, end_sec, reason) in order of date, start and end."""
    first = _local(week_start, zone).date() - timedelta(days=1)
    last = _local(as_of - timedelta(microseconds=1), zone).date()
    found: dict[date, SpecialDate] = {}
    for day, start_sec, end_sec, reason in rows:
        if not first <= day <= last:
            continue
        special = found.setdefault(day, SpecialDate(day, [], []))
        window = None if start_sec is None else SpecialWindow(start_sec, end_sec)
        if window is not None and window not in special.windows:
            special.windows.append(window)
        if reason is not None and reason not in special.reasons:
            special.reasons.append(reason)
    return list(found.values())


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


@lru_cache(maxsize=4096)
def _utc_of_local(day: date, zone: str) -> datetime:
    """The first instant at which the wall clock reads the day's midnight or later (as business
    hours are placed, docs/semantics.md §2.6)."""
    local = pd.Timestamp(day).tz_localize(zone, ambiguous=True, nonexistent="shift_forward")
    return local.tz_convert("UTC").tz_localize(None).to_pydatetime()
