"""A brute-force oracle for storemon reports, written from docs/semantics.md §2 alone.

It shares no code or logic with ``storemon_pipeline``. Time is sampled, not reasoned about:

* Wall clocks: for every UTC second of a generous range, pandas gives the store's wall-clock
  reading; a running maximum of it answers "the first UTC second at which the wall clock reads
  L or later" for any local time L by a binary search. Window boundaries are whole seconds and
  time-zone transitions happen on whole seconds, so this is exact.
* Business time is the union of the store's windows, kept as a boolean per half-second.
* Each cell of business time takes the status of the nearest usable poll, compared sample by
  sample (equal distance: the later poll). Polls and as-of instants lie on a grid of ``ticks``
  per second (whole seconds by default; ``ticks=4`` for quarter seconds), so midpoints fall on
  half-ticks and every half-tick cell has one nearest poll all through: sampling cells at their
  left edge is exact (not merely within a tolerance). Window boundaries and time-zone
  transitions are whole seconds, so a cell is in business time or not all through as well.

All instants inside are integers: Unix seconds (``int``), ticks, or half-ticks for the grid.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from functools import lru_cache
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import numpy as np
import pandas as pd

DEFAULT_ZONE = "America/Chicago"
DAY = 86_400
HOUR = 3_600
WEEK = 7 * DAY
COLUMNS = [
    "store_id",
    "uptime_last_hour",
    "uptime_last_day",
    "uptime_last_week",
    "downtime_last_hour",
    "downtime_last_day",
    "downtime_last_week",
]


@dataclass
class StoreCase:
    """One store as a user would describe it.

    ``hours``: rows ``(day, start, end)``; day 0 = Monday; times ``HH:MM[:SS]``, end may be
    ``24:00[:00]``. No (valid) rows: open 24x7; invalid rows are written to the feed, must be
    quarantined by the engine, and are ignored here. ``zone``: IANA name, ``None`` (no row) or
    an invalid name: both mean America/Chicago. ``polls``: ``(utc datetime, active)``; naive = UTC.
    ``special``: rows ``(local date YYYY-MM-DD, start, end)``, times as in ``hours`` or both
    empty (closed that date); invalid rows are quarantined and ignored here, like hours rows.
    """

    store_id: str
    hours: list[tuple[int | str, str, str]] = field(default_factory=list)
    zone: str | None = None
    polls: list[tuple[datetime, bool]] = field(default_factory=list)
    special: list[tuple[str, str, str]] = field(default_factory=list)


# ----------------------------------------------------------------------------- conversions


def to_ticks(instant: datetime, ticks: int = 1) -> int:
    """A datetime (naive = UTC) in ticks (1/ticks s) since the epoch; must lie on that grid."""
    if instant.tzinfo is None:
        instant = instant.replace(tzinfo=UTC)
    delta = instant - datetime(1970, 1, 1, tzinfo=UTC)
    micros = (delta.days * DAY + delta.seconds) * 1_000_000 + delta.microseconds
    if micros * ticks % 1_000_000:
        raise ValueError(f"oracle instants must be multiples of 1/{ticks} s: {instant!r}")
    return micros * ticks // 1_000_000


def to_unix(instant: datetime) -> int:
    """Unix seconds of a datetime (naive = UTC); must be a whole second."""
    return to_ticks(instant, 1)


def from_unix(seconds: int) -> datetime:
    return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(seconds=int(seconds))


def from_ticks(count: int, ticks: int) -> datetime:
    return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=count * 1_000_000 // ticks)


def parse_local_time(text: str, *, is_end: bool) -> int:
    """Seconds after local midnight of ``HH:MM[:SS]``; ``24:00[:00]`` only as an end."""
    parts = text.strip().split(":")
    if len(parts) not in (2, 3) or not all(p.isdigit() and len(p) == 2 for p in parts):
        raise ValueError(f"bad local time {text!r}")
    h, m = int(parts[0]), int(parts[1])
    s = int(parts[2]) if len(parts) == 3 else 0
    if h == 24 and m == 0 and s == 0 and is_end:
        return DAY
    if not (h < 24 and m < 60 and s < 60):
        raise ValueError(f"bad local time {text!r}")
    return h * HOUR + m * 60 + s


def valid_hours(hours: Iterable[tuple[object, str, str]]) -> list[tuple[int, int, int]]:
    """(day, start s, end s) of the valid rows; invalid ones are quarantined and do not count."""
    valid = []
    for day, start_text, end_text in hours:
        try:
            start = parse_local_time(start_text, is_end=False)
            end = parse_local_time(end_text, is_end=True)
            day_number = int(str(day).strip())
        except ValueError:
            continue
        if 0 <= day_number <= 6:
            valid.append((day_number, start, end))
    return valid


def valid_special(special: Iterable[tuple[str, str, str]]) -> dict[int, list[tuple[int, int]]]:
    """{local date (days since 1970-01-01): its windows (start s, end s)} of the valid special
    rows; an empty list is a date closed all day. Invalid rows make no date special."""
    dates: dict[int, list[tuple[int, int]]] = {}
    for date_text, start_text, end_text in special:
        text = date_text.strip()
        if len(text) != 10 or text[4] != "-" or text[7] != "-":
            continue
        try:
            day = (date.fromisoformat(text) - date(1970, 1, 1)).days
        except ValueError:
            continue
        if not 1970 <= date.fromisoformat(text).year <= 2099:
            continue
        if start_text.strip() == "" and end_text.strip() == "":
            dates.setdefault(day, [])
            continue
        try:
            start = parse_local_time(start_text, is_end=False)
            end = parse_local_time(end_text, is_end=True)
        except ValueError:
            continue
        dates.setdefault(day, []).append((start, end))
    return dates


def resolve_zone(zone: str | None) -> str:
    if zone is None:
        return DEFAULT_ZONE
    try:
        ZoneInfo(zone)
    except (ZoneInfoNotFoundError, ValueError):
        return DEFAULT_ZONE
    return zone


# ----------------------------------------------------------------------------- wall clocks


@lru_cache(maxsize=16)
def _wall_clock(zone: str, first_day: int, last_day: int) -> tuple[int, np.ndarray]:
    """(first UTC second g, running max of wall-clock seconds - g) for UTC days [first, last).

    Kept relative to g as int32 (7 MB for 20 days) so a few zones stay cached.
    """
    start = first_day * DAY
    n = (last_day - first_day) * DAY
    utc = pd.date_range(start=pd.Timestamp(start, unit="s", tz="UTC"), periods=n, freq="s")
    wall_ns = utc.tz_convert(zone).tz_localize(None).asi8
    wall = (wall_ns // 1_000_000_000 - start).astype(np.int32)
    running = np.maximum.accumulate(wall)
    running.flags.writeable = False
    return start, running


def local_to_utc(zone: str, local_seconds: np.ndarray, first_day: int, last_day: int) -> np.ndarray:
    """min{u : wall(u) >= L} for each local wall time L (naive "Unix" seconds of the wall).

    The grid is aligned to 4-day blocks so that nearby as-of instants share it.
    """
    first_day -= first_day % 4
    last_day += -last_day % 4
    start, running = _wall_clock(zone, first_day, last_day)
    idx = np.searchsorted(running, np.asarray(local_seconds, dtype=np.int64) - start, side="left")
    if np.any(idx == 0) or np.any(idx >= len(running)):
        raise AssertionError("oracle wall-clock grid does not cover the local times asked")
    return start + idx.astype(np.int64)


def business_intervals(
    hours: Sequence[tuple[int, str, str]],
    zone: str | None,
    lo: int,
    hi: int,
    special: Sequence[tuple[str, str, str]] = (),
) -> np.ndarray | None:
    """Windows (UTC second intervals [a, b)) that may touch [lo, hi); None = open 24x7.

    The intervals may overlap and are not clipped to [lo, hi). A date with special rows has
    those windows and none of its weekly ones; without weekly hours every other date is one
    24-hour window.
    """
    hours = valid_hours(hours)
    special_dates = valid_special(special)
    if not hours and not special_dates:
        return None
    if not hours:
        hours = [(day, 0, 0) for day in range(7)]  # start == end: 24 hours
    zone = resolve_zone(zone)
    # A window starting on local date D lies within local [D 00:00, D + 2 00:00), and local
    # dates differ from UTC dates by at most one; the wall clock from UTC by under 15 hours.
    first_date = lo // DAY - 2
    last_date = hi // DAY + 1
    dates = np.arange(first_date, last_date + 1)
    weekdays = (dates + 3) % 7  # 1970-01-01 was a Thursday (weekday 3)
    weekly_dates = ~np.isin(dates, list(special_dates))
    starts, ends = [], []
    for day, start, end in hours:
        on = dates[(weekdays == day) & weekly_dates]
        starts.append(on * DAY + start)
        ends.append(on * DAY + end if end > start else (on + 1) * DAY + end)
    for day, windows in special_dates.items():
        if first_date <= day <= last_date:
            for start, end in windows:
                starts.append(np.array([day * DAY + start]))
                ends.append(np.array([day * DAY + end if end > start else (day + 1) * DAY + end]))
    local_a = np.concatenate(starts)
    local_b = np.concatenate(ends)
    grid_first, grid_last = first_date - 1, last_date + 3
    a = local_to_utc(zone, local_a, grid_first, grid_last)
    b = local_to_utc(zone, local_b, grid_first, grid_last)
    return np.stack([a, b], axis=1)


def _in_business(intervals: np.ndarray | None, instants: np.ndarray) -> np.ndarray:
    if intervals is None:
        return np.ones(len(instants), dtype=bool)
    if len(instants) == 0 or len(intervals) == 0:
        return np.zeros(len(instants), dtype=bool)
    a = intervals[:, 0][:, None]
    b = intervals[:, 1][:, None]
    return np.any((a <= instants[None, :]) & (instants[None, :] < b), axis=0)


def _business_mask(intervals: np.ndarray | None, lo: int, hi: int) -> np.ndarray:
    """Boolean per UTC second of [lo, hi): inside the union of the windows."""
    n = hi - lo
    if intervals is None:
        return np.ones(n, dtype=bool)
    a = np.clip(intervals[:, 0], lo, hi) - lo
    b = np.clip(intervals[:, 1], lo, hi) - lo
    keep = b > a
    depth = np.zeros(n + 1, dtype=np.int64)
    np.add.at(depth, a[keep], 1)
    np.add.at(depth, b[keep], -1)
    return np.cumsum(depth[:n]) > 0


# ----------------------------------------------------------------------------- polls


def usable_polls(store: StoreCase, as_of: int, intervals: np.ndarray | None, ticks: int = 1):
    """(sorted unique poll ticks, active flags): polls <= T (in ticks), in-hours if any, else
    all."""
    if not store.polls:
        return np.zeros(0, np.int64), np.zeros(0, bool)
    times = np.array([to_ticks(t, ticks) for t, _ in store.polls], dtype=np.int64)
    active = np.array([bool(a) for _, a in store.polls], dtype=bool)
    keep = times <= as_of
    times, active = times[keep], active[keep]
    if len(times) == 0:
        return times, active
    # One poll per instant; inactive wins.
    uniq, inverse = np.unique(times, return_inverse=True)
    all_active = np.ones(len(uniq), dtype=bool)
    np.logical_and.at(all_active, inverse, active)
    inside = _in_business(None if intervals is None else intervals * ticks, uniq)
    if inside.any():
        return uniq[inside], all_active[inside]
    return uniq, all_active


def nearest_status(poll_half: np.ndarray, poll_active: np.ndarray, samples: np.ndarray):
    """Status of the nearest poll for each sample (same units); a tie goes to the later poll."""
    n = len(poll_half)
    idx = np.searchsorted(poll_half, samples, side="right")  # polls <= sample
    prev = np.clip(idx - 1, 0, n - 1)
    nxt = np.clip(idx, 0, n - 1)
    d_prev = samples - poll_half[prev]
    d_next = poll_half[nxt] - samples
    use_prev = (idx == n) | ((idx > 0) & (d_prev < d_next))
    return np.where(use_prev, poll_active[prev], poll_active[nxt])


# ----------------------------------------------------------------------------- report


@dataclass
class StoreResult:
    store_id: str
    up_seconds: dict[int, float]
    down_seconds: dict[int, float]
    usable_polls: int
    fallback: bool

    def row(self) -> dict[str, object]:
        return {
            "store_id": self.store_id,
            "uptime_last_hour": self.up_seconds[HOUR] / 60,
            "uptime_last_day": self.up_seconds[DAY] / 3600,
            "uptime_last_week": self.up_seconds[WEEK] / 3600,
            "downtime_last_hour": self.down_seconds[HOUR] / 60,
            "downtime_last_day": self.down_seconds[DAY] / 3600,
            "downtime_last_week": self.down_seconds[WEEK] / 3600,
        }


def store_result(store: StoreCase, as_of: datetime | int, ticks: int = 1) -> StoreResult | None:
    """Seconds up/down per period for one store, or None if it has no poll <= T.

    ``as_of`` is a datetime, or an int in ticks; polls and T must lie on the grid of ``ticks``
    per second.
    """
    t = as_of if isinstance(as_of, int) else to_ticks(as_of, ticks)
    poll_ticks = [to_ticks(p, ticks) for p, _ in store.polls]
    # Business time is needed from the earliest poll (for "in hours"); starting at least
    # 9 days back keeps the wall-clock grid shared by the stores of one example.
    earliest = min([t // ticks - 9 * DAY, *[p // ticks for p in poll_ticks if p <= t]])
    intervals = business_intervals(
        store.hours, store.zone, earliest, -(-t // ticks) + 1, store.special
    )
    times, active = usable_polls(store, t, intervals, ticks)
    if len(times) == 0:
        return None
    fallback = intervals is not None and not _in_business(intervals * ticks, times).any()
    cells = 2 * ticks  # half-tick cells per second
    lo = t - WEEK * ticks
    first_second, last_second = lo // ticks, -(-t // ticks)
    business = _business_mask(intervals, first_second, last_second)  # per second
    grid = np.arange(2 * lo, 2 * t, dtype=np.int64)  # half-tick cells of [T-7d, T)
    samples = grid[business[grid // cells - first_second]]
    status = nearest_status(2 * times, active, samples)
    up, down = {}, {}
    for period in (HOUR, DAY, WEEK):
        recent = samples >= 2 * (t - period * ticks)
        up[period] = np.count_nonzero(status & recent) / cells
        down[period] = np.count_nonzero(~status & recent) / cells
    return StoreResult(store.store_id, up, down, len(times), fallback)


def oracle_report(
    stores: Iterable[StoreCase], as_of: datetime | int, ticks: int = 1
) -> pd.DataFrame:
    """The report frame (unrounded; hour in minutes, day/week in hours), sorted by store_id."""
    return report_from_results(store_result(store, as_of, ticks) for store in stores)


def report_from_results(results: Iterable[StoreResult | None]) -> pd.DataFrame:
    rows = [result.row() for result in results if result is not None]
    frame = pd.DataFrame(rows, columns=COLUMNS)
    return frame.sort_values("store_id", kind="stable").reset_index(drop=True)


def latest_poll(stores: Iterable[StoreCase]) -> datetime:
    """The default T: the latest poll of any store."""
    return from_unix(max(to_unix(p) for s in stores for p, _ in s.polls))



# ----------------------------------------------------------------------------- feeds

POLL_FORMATS = (
    "{:%Y-%m-%d %H:%M:%S} UTC",
    "{:%Y-%m-%d %H:%M:%S}.000000 UTC",
    "{:%Y-%m-%dT%H:%M:%SZ}",
    "{:%Y-%m-%dT%H:%M:%S}+00:00",
)
# Forms that keep a fraction of a second, for instants that have one.
FRACTION_FORMATS = (
    "{:%Y-%m-%d %H:%M:%S.%f} UTC",
    "{:%Y-%m-%dT%H:%M:%S.%f}Z",
    "{:%Y-%m-%dT%H:%M:%S.%f}+00:00",
)


REASONS = ("holiday", "", "Christmas Eve", '"closed, family event"', "inventory", "Tết")


def write_feeds(
    stores: Sequence[StoreCase],
    folder: Path | str,
    *,
    poll_files: int = 1,
    seed: int = 0,
) -> dict[str, list]:
    """Write the four CSV feeds a user would drop in; returns {"polls": [...], ...} paths.

    Polls are spread over ``poll_files`` files (row i goes to file i % n) in a shuffled order,
    with the documented timestamp formats and status spellings mixed.
    """
    rng = random.Random(seed)
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    poll_rows = []
    for store in stores:
        for instant, active in store.polls:
            utc = (instant if instant.tzinfo else instant.replace(tzinfo=UTC)).astimezone(UTC)
            utc = utc.replace(tzinfo=None)
            status = rng.choice(("active", "Active", " ACTIVE") if active else
                                ("inactive", "Inactive", "INACTIVE "))
            forms = FRACTION_FORMATS if utc.microsecond else POLL_FORMATS
            poll_rows.append(f"{store.store_id},{status},{rng.choice(forms).format(utc)}")
    rng.shuffle(poll_rows)
    paths: dict[str, list] = {"polls": [], "hours": [], "timezones": [], "special": []}
    for i in range(poll_files):
        path = folder / f"store_status_{i}.csv"
        path.write_text("store_id,status,timestamp_utc\n" + "".join(
            row + "\n" for row in poll_rows[i::poll_files]))
        paths["polls"].append(path)
    hour_rows = [
        f"{store.store_id},{day},{start},{end}\n"
        for store in stores
        for day, start, end in store.hours
    ]
    rng.shuffle(hour_rows)
    path = folder / "menu_hours.csv"
    path.write_text("store_id,dayOfWeek,start_time_local,end_time_local\n" + "".join(hour_rows))
    paths["hours"].append(path)
    # the reason column is optional: present or not, in any place, free text (quoted or not)
    with_reason = rng.random() < 0.5
    special_rows = [
        f"{store.store_id},{day},{start},{end}"
        + (f",{rng.choice(REASONS)}" if with_reason else "") + "\n"
        for store in stores
        for day, start, end in store.special
    ]
    rng.shuffle(special_rows)
    path = folder / "special_hours.csv"
    path.write_text("store_id,date,start_time_local,end_time_local"
                    + (",reason" if with_reason else "") + "\n" + "".join(special_rows))
    paths["special"] = [path]
    zone_rows = [f"{s.store_id},{s.zone}\n" for s in stores if s.zone is not None]
    rng.shuffle(zone_rows)
    path = folder / "timezones.csv"
    path.write_text("store_id,timezone_str\n" + "".join(zone_rows))
    paths["timezones"].append(path)
    return paths


# ----------------------------------------------------------------------------- SLA periods
# docs/semantics.md §2.17: a period [start, end) of a store, computed as of
# A = min(end (or a later as-of), latest poll): the report's rules as of A, counted over
# [start, min(end, A)); incidents are the maximal runs of inactive status (at every instant,
# business time or not) inside that span that cover some business time.


def local_instant(zone: str | None, local: datetime) -> int:
    """The first UTC second at which the store's wall clock reads ``local`` (naive) or later."""
    seconds = to_unix(local.replace(tzinfo=UTC))  # the wall clock's reading as "Unix" seconds
    day = seconds // DAY
    return int(local_to_utc(resolve_zone(zone), np.array([seconds]), day - 3, day + 3)[0])


@dataclass
class PeriodResult:
    store_id: str
    start: int  # Unix seconds
    end: int  # what is counted ends here: min(period end, A), never before start
    business_seconds: float
    up_seconds: float
    down_seconds: float
    incidents: list[tuple[float, float, float]]  # (start, end, business seconds), in order


def oracle_period(
    store: StoreCase, start: int, end: int, latest: int, as_of: int | None = None
) -> PeriodResult | None:
    """One store's period [start, end) (Unix seconds, its own UTC bounds) as of
    min(as_of or end, latest), sampled per half second; None when the store has no poll at or
    before that instant. Polls must be whole seconds."""
    cut = min(end if as_of is None else as_of, latest)
    if not any(to_unix(p) <= cut for p, _ in store.polls):
        return None
    stop = max(start, min(end, cut))
    earliest = min([start - 9 * DAY, *[to_unix(p) for p, _ in store.polls]])
    intervals = business_intervals(store.hours, store.zone, earliest, max(cut, stop) + 1,
                                   store.special)
    times, active = usable_polls(store, cut, intervals)
    business = _business_mask(intervals, start, stop)  # per second
    cells = np.arange(2 * start, 2 * stop, dtype=np.int64)  # half-second cells
    in_business = business[cells // 2 - start]
    status = nearest_status(2 * times, active, cells)
    down = ~status
    incidents = []
    if down.any():
        edges = np.diff(np.concatenate([[0], down.astype(np.int8), [0]]))
        run_starts, run_ends = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
        covered = np.concatenate([[0], np.cumsum(in_business)])
        for a, b in zip(run_starts, run_ends, strict=True):
            seconds = (covered[b] - covered[a]) / 2
            if seconds > 0:
                incidents.append((start + a / 2, start + b / 2, seconds))
    return PeriodResult(
        store.store_id, start, stop, np.count_nonzero(in_business) / 2,
        np.count_nonzero(status & in_business) / 2, np.count_nonzero(down & in_business) / 2,
        incidents,
    )
