"""Property tests: the engine agrees with the brute-force oracle (tests/support/oracle.py).

Random stores, hours, zones (DST in both hemispheres, 30/45-minute offsets), as-of instants in
DST weeks and transition nights, and poll patterns. Engine and oracle must agree within 2
seconds per value, and report the same stores, each once, sorted by store_id.
"""

from __future__ import annotations

import os
import tempfile
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, Phase, assume, event, given, settings
from hypothesis import strategies as st
from support.oracle import (
    COLUMNS,
    DAY,
    HOUR,
    StoreCase,
    business_intervals,
    from_ticks,
    from_unix,
    oracle_report,
    report_from_results,
    store_result,
    to_unix,
    valid_hours,
)

# STOREMON_ORACLE_SCALE=10 runs ten times the examples (a soak run, not for CI).
SCALE = float(os.environ.get("STOREMON_ORACLE_SCALE", "1"))
TOLERANCE_SECONDS = 2.0
UNIT_SECONDS = {"hour": 60.0, "day": 3600.0, "week": 3600.0}

ZONES = [
    "America/New_York",
    "America/Chicago",
    "Europe/London",
    "Europe/Berlin",
    "Australia/Sydney",
    "Australia/Lord_Howe",
    "Pacific/Chatham",
    "Asia/Kolkata",
    "Asia/Kathmandu",
    "America/St_Johns",
    "America/Santiago",
    "UTC",
    None,  # no time-zone row: America/Chicago
    "Mars/Olympus_Mons",  # not an IANA name: quarantined, America/Chicago
]


def _utc(*args) -> int:
    return to_unix(datetime(*args, tzinfo=UTC))


# 2023 transitions (UTC instants) and two quiet weeks; T is put near or after one of them.
ANCHORS = [
    _utc(2023, 1, 25, 0, 0),  # the real data's week
    _utc(2023, 3, 12, 7, 0),  # US spring forward (New York 02:00 EST)
    _utc(2023, 3, 12, 5, 30),  # St John's spring forward
    _utc(2023, 3, 26, 1, 0),  # EU spring forward
    _utc(2023, 4, 1, 14, 0),  # NZ / Chatham fall back
    _utc(2023, 4, 1, 15, 0),  # Lord Howe fall back (30 min)
    _utc(2023, 4, 1, 16, 0),  # Sydney fall back
    _utc(2023, 4, 2, 3, 0),  # Santiago fall back (Sat 24:00 -> 23:00)
    _utc(2023, 7, 15, 12, 0),  # quiet
    _utc(2023, 9, 3, 4, 0),  # Santiago spring forward (00:00 -> 01:00)
    _utc(2023, 9, 23, 14, 0),  # NZ / Chatham spring forward
    _utc(2023, 9, 30, 15, 30),  # Lord Howe spring forward (30 min)
    _utc(2023, 9, 30, 16, 0),  # Sydney spring forward
    _utc(2023, 10, 29, 1, 0),  # EU fall back
    _utc(2023, 11, 5, 6, 0),  # US fall back (New York 02:00 EDT)
    _utc(2023, 11, 5, 4, 30),  # St John's fall back
]

# Local times that hit transitions in the zones above, plus ordinary ones.
INTERESTING_TIMES = [
    0, 30 * 60, HOUR, HOUR + 30 * 60, 2 * HOUR - 1, 2 * HOUR, 2 * HOUR + 15 * 60,
    2 * HOUR + 30 * 60, 2 * HOUR + 45 * 60, 3 * HOUR, 3 * HOUR + 30 * 60, 3 * HOUR + 45 * 60,
    4 * HOUR, 9 * HOUR, 12 * HOUR, 17 * HOUR, 23 * HOUR, 23 * HOUR + 30 * 60, DAY - 1,
]


def fmt_local(seconds: int, long: bool) -> str:
    h, rest = divmod(seconds, HOUR)
    m, s = divmod(rest, 60)
    return f"{h:02d}:{m:02d}:{s:02d}" if long or s else f"{h:02d}:{m:02d}"


local_seconds = st.one_of(
    st.sampled_from(INTERESTING_TIMES),
    st.integers(0, DAY - 1).map(lambda s: s - s % 900),  # quarter hours
    st.integers(0, DAY - 1),  # any second
)


@st.composite
def hour_rows(draw):
    day = draw(st.integers(0, 6))
    start = draw(local_seconds)
    kind = draw(st.sampled_from(["any", "any", "any", "same", "24:00", "24:00:00"]))
    if kind == "same":
        end_text = fmt_local(start, draw(st.booleans()))  # a 24-hour window
    elif kind == "any":
        end_text = fmt_local(draw(local_seconds), draw(st.booleans()))
    else:
        end_text = kind
    return (day, fmt_local(start, draw(st.booleans())), end_text)


# Rows the engine must reject (quarantine) and not count.
INVALID_ROWS = [
    (7, "09:00", "17:00"),
    (-1, "09:00", "17:00"),
    (0, "25:00", "26:00"),
    (1, "12:60", "13:00"),
    (2, "24:00", "10:00"),  # 24:00 is an end time only
    (3, "09:00", "24:01"),
    (4, "noon", "17:00"),
    ("Mon", "09:00", "17:00"),
]

valid_hours_strategy = st.one_of(
    st.just([]),  # open 24x7
    st.lists(hour_rows(), min_size=1, max_size=3),
    st.lists(hour_rows(), min_size=3, max_size=10),  # several a day, overlaps
)


@st.composite
def hours_strategy(draw):
    rows = draw(valid_hours_strategy)
    if draw(st.sampled_from([False] * 7 + [True])):  # a few bad rows (alone: still 24x7)
        rows = rows + draw(st.lists(st.sampled_from(INVALID_ROWS), min_size=1, max_size=2))
        rows = draw(st.permutations(rows))
    return list(rows)



# Special rows the engine must reject: they do not make their date special.
INVALID_SPECIAL = [
    ("2023-02-30", "", ""),
    ("2023-1-05", "", ""),
    ("25/12/2023", "10:00", "12:00"),
    (None, "10:00", ""),  # None: a date near T
    (None, "", "14:00"),
    (None, "24:00", "10:00"),
    (None, "09:00", "24:30"),
]


def local_date_text(day: int) -> str:
    return (datetime(1970, 1, 1) + timedelta(days=day)).strftime("%Y-%m-%d")


@st.composite
def special_rows(draw, days: list[int]):
    """Special dates on some of ``days`` (local dates, days since 1970): closed days, shorter
    days, split days, overnight and 24-hour specials, a closed row beside a window, and a few
    invalid rows; for about a third of the stores."""
    if not draw(st.sampled_from([True, False, False])):
        return []
    rows = []
    for day in draw(st.lists(st.sampled_from(days), min_size=1, max_size=4, unique=True)):
        date_text = local_date_text(day)
        kind = draw(st.sampled_from(
            ["closed", "shorter", "split", "overnight", "whole", "closed_and_window"]))
        if kind in ("closed", "closed_and_window"):
            rows.append((date_text, "", ""))
        count = {"closed": 0, "split": 2}.get(kind, 1)
        for _ in range(count):
            start = draw(local_seconds)
            if kind == "overnight":
                end_text = fmt_local(draw(st.integers(0, start)), False)
            elif kind == "whole":
                end_text = draw(st.sampled_from([fmt_local(start, False), "24:00"]))
            else:
                end_text = draw(st.one_of(
                    local_seconds.map(lambda e: fmt_local(e, False)), st.just("24:00")))
            rows.append((date_text, fmt_local(start, draw(st.booleans())), end_text))
    if draw(st.sampled_from([False] * 3 + [True])):
        for date_text, start, end in draw(st.lists(st.sampled_from(INVALID_SPECIAL), max_size=2)):
            rows.append((date_text or local_date_text(draw(st.sampled_from(days))), start, end))
    return list(draw(st.permutations(rows)))


statuses = st.booleans()


def _random_polls(draw, lo: int, hi: int, max_size: int = 12):
    offsets = draw(st.lists(st.integers(lo, hi), max_size=max_size))
    return [(o, draw(statuses)) for o in offsets]


@st.composite
def poll_offsets(draw, intervals, pattern: str):
    """Polls as (seconds relative to T, active) for one pattern."""
    if pattern == "random":  # anywhere from 9 days before T to a day after it
        return _random_polls(draw, -9 * DAY, DAY)
    if pattern == "hourly":  # the real data: about one poll an hour
        start = draw(st.integers(-9 * DAY, -6 * DAY))
        step = draw(st.integers(3000, 4200))
        jitter = draw(st.integers(0, 600))
        p_active = draw(st.sampled_from([0.1, 0.5, 0.9]))
        rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
        offsets = np.arange(start, 2 * HOUR, step) + rng.integers(0, jitter + 1, size=1)
        offsets = offsets + rng.integers(-jitter, jitter + 1, size=len(offsets))
        active = rng.random(len(offsets)) < p_active
        return [(int(o), bool(a)) for o, a in zip(offsets, active, strict=True)]
    if pattern == "spaced":  # equal spacing: midpoints on whole or half seconds
        base = draw(st.integers(-8 * DAY, 0))
        step = draw(st.one_of(st.integers(1, 7), st.integers(1, 4 * HOUR)))
        count = draw(st.integers(2, 12))
        return [(base + i * step, draw(statuses)) for i in range(count)]
    if pattern == "burst":  # several polls within seconds
        center = draw(st.integers(-8 * DAY, 0))
        return [(center + draw(st.integers(-5, 5)), draw(statuses))
                for _ in range(draw(st.integers(2, 6)))]
    if pattern == "single":
        return [(draw(st.integers(-9 * DAY, 0)), draw(statuses))]
    if pattern == "at_T":  # a poll exactly at T (it counts) and one just after (it does not)
        return [(0, draw(statuses)), (1, draw(statuses))]
    if pattern == "after_T":  # polls after T only: never change the report
        return _random_polls(draw, 1, DAY, max_size=4)
    if pattern == "boundaries":  # polls on window edges: start is inside, end is outside
        if intervals is None or len(intervals) == 0:
            return _random_polls(draw, -9 * DAY, 0, max_size=3)
        edges = np.unique(intervals.ravel())
        chosen = draw(st.lists(st.sampled_from(list(edges)), min_size=1, max_size=6))
        return [(int(e) + draw(st.sampled_from([0, 0, -1, 1])), draw(statuses))
                for e in chosen]
    if pattern == "outside":  # no poll in hours: the fallback to all polls
        candidates = _random_polls(draw, -9 * DAY, 0, max_size=8)
        if intervals is None:
            return candidates
        return [
            (o, a) for o, a in candidates
            if not np.any((intervals[:, 0] <= o) & (o < intervals[:, 1]))
        ]
    raise AssertionError(pattern)


PATTERNS = ["random", "hourly", "spaced", "burst", "single", "at_T", "after_T", "boundaries",
            "outside", "outside"]


def _store_id(draw, index: int) -> str:
    """Unique within a scenario (the index is part of it); text, never a number."""
    kind = draw(st.sampled_from(["big", "int", "zeros", "uuid", "text"]))
    if kind == "big":  # 19 digits, some beyond int64
        return str(draw(st.integers(10**16, 10**17 - 1))) + f"{index:02d}"
    if kind == "int":
        return str(draw(st.integers(0, 10**6))) + f"{index:02d}"
    if kind == "zeros":  # "007" is not "7"
        return "0" * draw(st.integers(1, 3)) + f"{index}"
    if kind == "uuid":
        return str(draw(st.uuids()))[:-2] + f"{index:02d}"
    return f"store-{index}.{draw(st.sampled_from(['a', 'B', 'x_1', 'z:9']))}"


def _store_basics(draw, index: int, t: int, reach: int, anchor: int | None = None):
    """A store's id, zone, hours and special rows, and its windows from ``reach`` before T to
    two days after (relative to T; None: open 24x7). Special dates fall in T's week and around
    the ``anchor`` (a transition night)."""
    store_id = _store_id(draw, index)
    zone = draw(st.sampled_from(ZONES))
    hours = draw(hours_strategy())
    days = list(range(t // DAY - 8, t // DAY + 2))
    if anchor is not None:
        days += [anchor // DAY + d for d in (-1, 0, 1)]
    special = draw(special_rows(days))
    intervals = business_intervals(hours, zone, t - reach, t + 2 * DAY, special)
    return store_id, zone, hours, special, None if intervals is None else intervals - t


@st.composite
def scenarios(draw, *, max_stores: int = 7, near_transition: bool = False):
    anchor = draw(st.sampled_from(ANCHORS))
    if near_transition:
        offset = draw(st.integers(-6 * HOUR, 6 * HOUR))
    else:
        offset = draw(st.one_of(st.integers(-6 * HOUR, 6 * HOUR), st.integers(-DAY, 8 * DAY)))
    t = anchor + offset
    n_stores = draw(st.integers(1, max_stores))
    stores = []
    for index in range(n_stores):
        store_id, zone, hours, special, intervals = _store_basics(
            draw, index, t, 10 * DAY, anchor)
        patterns = draw(st.lists(st.sampled_from(PATTERNS), min_size=1, max_size=3))
        polls = []
        for pattern in patterns:
            polls += draw(poll_offsets(intervals, pattern))
        if polls and draw(st.sampled_from([False, False, True])):  # duplicates, other status
            for o, a in draw(st.lists(st.sampled_from(polls), min_size=1, max_size=3)):
                polls.append((o, not a))
        stores.append(StoreCase(
            store_id, hours, zone, [(from_unix(t + o), a) for o, a in polls], special))
    return stores, t


def as_of_forms(t: int):
    """T as naive UTC, aware UTC, and aware in another offset (all the same instant)."""
    aware = from_unix(t)
    return st.sampled_from([
        aware.replace(tzinfo=None),
        aware,
        aware.astimezone(timezone(timedelta(hours=5, minutes=45))),
        aware.astimezone(timezone(timedelta(hours=-3, minutes=-30))),
    ])


def assert_agrees(engine: pd.DataFrame, expected: pd.DataFrame) -> None:
    assert list(engine.columns) == COLUMNS
    ids = list(engine["store_id"])
    assert len(ids) == len(set(ids)), f"a store reported twice: {ids}"
    assert ids == sorted(ids), f"not sorted by store_id: {ids}"
    assert set(ids) == set(expected["store_id"]), (
        f"stores differ: engine only {set(ids) - set(expected['store_id'])}, "
        f"oracle only {set(expected['store_id']) - set(ids)}"
    )
    merged = engine.merge(expected, on="store_id", suffixes=("_engine", "_oracle"))
    problems = []
    for column in COLUMNS[1:]:
        unit = UNIT_SECONDS[column.rsplit("_", 1)[1]]
        diff = (merged[f"{column}_engine"] - merged[f"{column}_oracle"]).abs() * unit
        for i in np.flatnonzero(~(diff <= TOLERANCE_SECONDS)):
            problems.append(
                f"{merged.loc[i, 'store_id']} {column}: engine "
                f"{merged.loc[i, f'{column}_engine']!r} oracle "
                f"{merged.loc[i, f'{column}_oracle']!r} ({diff[i]:.1f} s apart)"
            )
    assert not problems, "\n".join(problems)


def _oracle_with_events(stores, t) -> pd.DataFrame:
    results = [store_result(store, t) for store in stores]
    for store, result in zip(stores, results, strict=True):
        if result is None:
            event("store absent (no poll <= T)")
        elif result.fallback:
            event("store uses the fallback (no poll in hours)")
        if not valid_hours(store.hours):
            event("store open 24x7" + (" but on its special dates" if store.special else ""))
        if store.special:
            event("store has special dates")
        if len(valid_hours(store.hours)) < len(store.hours):
            event("store has invalid hours rows")
    return report_from_results(results)


def check(run_engine, stores, t, as_of, *, poll_files=1, seed=0,
          file_order=("polls", "hours", "special", "timezones"), more_as_of=()) -> None:
    """Engine vs oracle at T (given as `as_of`) and at the extra Unix instants `more_as_of`."""
    expected = [_oracle_with_events(stores, t)] + [oracle_report(stores, x) for x in more_as_of]
    with tempfile.TemporaryDirectory(prefix="storemon-oracle-") as folder:
        engine = run_engine(stores, [as_of, *map(from_unix, more_as_of)], Path(folder),
                            poll_files=poll_files, seed=seed, file_order=file_order)
    for got, want in zip(engine, expected, strict=True):
        assert_agrees(got, want)


COMMON = {
    "deadline": None,
    "phases": [Phase.explicit, Phase.reuse, Phase.generate, Phase.target, Phase.shrink],
    "suppress_health_check": [HealthCheck.too_slow, HealthCheck.data_too_large,
                              HealthCheck.filter_too_much],
}


@settings(max_examples=round(60 * SCALE), **COMMON)
@given(data=st.data(), scenario=scenarios())
def test_engine_matches_oracle(run_engine, data, scenario):
    stores, t = scenario
    as_of = data.draw(as_of_forms(t), label="as_of")
    poll_files = data.draw(st.integers(1, 3), label="poll_files")
    seed = data.draw(st.integers(0, 2**16), label="seed")
    order = data.draw(st.permutations(["polls", "hours", "special", "timezones"]),
                      label="file_order")
    # more reports of the same database, at other instants around T
    more = data.draw(st.lists(st.integers(-2 * DAY, DAY).map(lambda d: t + d), max_size=2),
                     label="more_as_of")
    check(run_engine, stores, t, as_of, poll_files=poll_files, seed=seed, file_order=order,
          more_as_of=more)


@settings(max_examples=round(35 * SCALE), **COMMON)
@given(scenario=scenarios(near_transition=True))
def test_engine_matches_oracle_in_transition_nights(run_engine, scenario):
    stores, t = scenario
    check(run_engine, stores, t, from_unix(t))


@settings(max_examples=round(12 * SCALE), **COMMON)
@given(scenario=scenarios(max_stores=4))
def test_default_as_of_is_latest_poll(run_engine, scenario):
    stores, _ = scenario
    polls = [to_unix(p) for s in stores for p, _ in s.polls]
    assume(polls)
    expected = oracle_report(stores, max(polls))
    with tempfile.TemporaryDirectory(prefix="storemon-oracle-") as folder:
        engine = run_engine(stores, None, Path(folder))
    assert_agrees(engine, expected)


@settings(max_examples=round(12 * SCALE), **COMMON)
@given(data=st.data(), scenario=scenarios(max_stores=5))
def test_reported_stores_absent_and_once(run_engine, data, scenario):
    """Stores without a poll <= T are absent, whatever else they have; the others appear once,
    even when the same polls arrive in several files and the same file twice."""
    stores, t = scenario
    # Extra stores that must not be reported: no polls at all / only after T.
    ghost = StoreCase("zz-no-polls", [(0, "09:00", "17:00")], "Europe/Berlin", [])
    future = StoreCase("zz-future", [], None,
                       [(from_unix(t + 1), True), (from_unix(t + HOUR), False)])
    stores = [*stores, ghost, future]
    with tempfile.TemporaryDirectory(prefix="storemon-oracle-") as folder:
        folder = Path(folder)
        engine = run_engine(stores, from_unix(t), folder, poll_files=2,
                            seed=data.draw(st.integers(0, 99)))
        # the same feeds again (plus a merged copy of the polls): nothing changes
        from storemon_pipeline.engine.db import connect
        from storemon_pipeline.engine.ingest import ingest_paths
        from storemon_pipeline.engine.report import report_frame

        merged = folder / "all_polls.csv"
        lines = (folder / "store_status_0.csv").read_text().splitlines(keepends=True)
        lines += (folder / "store_status_1.csv").read_text().splitlines(keepends=True)[1:]
        merged.write_text("".join(lines))
        con = connect(folder / "storemon.duckdb")
        try:
            ingest_paths(con, sorted(folder.glob("*.csv")))
            again = report_frame(con, as_of=from_unix(t))
            # a shard: exactly those stores' rows of the full report (unknown ids: nothing)
            shard = data.draw(st.lists(st.sampled_from([s.store_id for s in stores]),
                                       unique=True), label="shard")
            shard_frame = report_frame(con, as_of=from_unix(t),
                                       store_ids=[*shard, "not-a-store"])
        finally:
            con.close()
    ids = list(engine["store_id"])
    assert "zz-no-polls" not in ids and "zz-future" not in ids
    assert len(ids) == len(set(ids))
    expected = oracle_report(stores, t)
    assert_agrees(engine, expected)
    assert_agrees(again, expected)
    pd.testing.assert_frame_equal(engine, again)
    expected_shard = engine[engine["store_id"].isin(shard)].reset_index(drop=True)
    pd.testing.assert_frame_equal(shard_frame.reset_index(drop=True), expected_shard)


def test_oracle_ties_go_to_the_later_poll():
    """Hand-checked: polls at 00:00 (active) and 00:00:03 (inactive), T = 00:00:10, 24x7.

    Midpoint 00:00:01.5: active owns [T-1h, 00:00:01.5), inactive [00:00:01.5, T).
    """
    t0 = _utc(2023, 1, 22, 0, 0)
    store = StoreCase("s", [], "UTC", [(from_unix(t0), True), (from_unix(t0 + 3), False)])
    result = store_result(store, t0 + 10)
    assert result.down_seconds[HOUR] == 8.5
    assert result.up_seconds[HOUR] == 3600 - 8.5
    # Duplicate instant with conflicting status: inactive wins.
    store.polls.append((from_unix(t0), False))
    result = store_result(store, t0 + 10)
    assert result.up_seconds[HOUR] == 0


def test_oracle_fallback_and_in_hours():
    """Hand-checked: a poll at a window's end is outside, at its start inside."""
    monday = datetime(2023, 1, 23, tzinfo=UTC)
    hours = [(0, "09:00", "10:00")]
    # Poll at 10:00 (end, outside) active, poll at 09:00 (start, inside) inactive.
    store = StoreCase("s", hours, "UTC", [(monday + timedelta(hours=10), True),
                                          (monday + timedelta(hours=9), False)])
    result = store_result(store, to_unix(monday + timedelta(hours=12)))
    assert not result.fallback and result.usable_polls == 1
    assert result.down_seconds[DAY] == HOUR and result.up_seconds[DAY] == 0
    # Only the 10:00 poll: the fallback uses it.
    store.polls = store.polls[:1]
    result = store_result(store, to_unix(monday + timedelta(hours=12)))
    assert result.fallback and result.up_seconds[DAY] == HOUR


@pytest.mark.parametrize(
    ("zone", "hours", "day", "expected_hours"),
    [
        # Lord Howe fall back, Sun 2023-04-02 02:00 -> 01:30: a 00:00-24:00 day lasts 24.5 h.
        ("Australia/Lord_Howe", [(6, "00:00", "24:00")], datetime(2023, 4, 2), 24.5),
        # Chatham spring forward, Sun 2023-09-24 02:45 -> 03:45: 23 h.
        ("Pacific/Chatham", [(6, "00:00", "00:00")], datetime(2023, 9, 24), 23.0),
        # Santiago spring forward Sun 2023-09-03 00:00 -> 01:00: the Sat 23:00 - Sun 00:30
        # overnight window ends at the jump (00:30 does not exist): 1 h of real time.
        ("America/Santiago", [(5, "23:00", "00:30")], datetime(2023, 9, 2), 1.0),
        # Kathmandu, no DST: always 8 h.
        ("Asia/Kathmandu", [(0, "09:00", "17:00")], datetime(2023, 1, 23), 8.0),
    ],
)
def test_oracle_business_time_hand_checked(zone, hours, day, expected_hours):
    lo = to_unix(day.replace(tzinfo=UTC)) - DAY
    hi = lo + 4 * DAY
    ivs = business_intervals(hours, zone, lo, hi)
    # the one window starting on that local date
    ivs = [(a, b) for a, b in ivs if lo <= a < hi]
    assert len(ivs) == 1
    a, b = ivs[0]
    assert (b - a) / 3600 == expected_hours


def _ny(*args) -> datetime:
    return datetime(*args, tzinfo=UTC)


# Hand-made stores for corners the random search reaches rarely; one database, several T.
EXPLICIT_STORES = [
    # The only in-hours poll is 8 days before T (before the week): it alone is used.
    StoreCase("x-old-in-hours", [(0, "09:00", "17:00")], "America/Chicago", [
        (_ny(2023, 1, 16, 16, 0), False),  # Mon 10:00 CST, in hours
        (_ny(2023, 1, 23, 5, 0), True),  # Sun 23:00 CST, outside
        (_ny(2023, 1, 24, 4, 0), True),  # Mon 22:00 CST, outside
    ]),
    # Overnight window into the US spring-forward night: Sat 22:00 - Sun 02:30 -> 03:00 EDT.
    StoreCase("x-overnight-spring", [(5, "22:00", "02:30")], "America/New_York", [
        (_ny(2023, 3, 12, 4, 0), True), (_ny(2023, 3, 12, 6, 59, 59), False),
    ]),
    # Fall-back night, windows ending and starting at 01:30 (the first occurrence).
    StoreCase("x-fall-back", [(6, "00:00", "01:30"), (6, "01:30", "03:00")], "America/New_York",
              [(_ny(2023, 11, 5, 5, 29, 59), True), (_ny(2023, 11, 5, 5, 30), False)]),
    # Santiago: midnight does not exist on 2023-09-03; 00:00-01:00 is empty; 24:00 ends.
    StoreCase("x-santiago", [(6, "00:00", "01:00"), (5, "20:00", "24:00"),
                             (6, "00:30", "00:30")], "America/Santiago",
              [(_ny(2023, 9, 3, 3, 59, 59), True), (_ny(2023, 9, 3, 4, 0), False),
               (_ny(2023, 9, 3, 4, 0), True)]),
    # Lord Howe fall back by 30 min: a 24-hour window (end == start) lasts 24.5 h.
    StoreCase("x-lord-howe", [(6, "01:45", "01:45")], "Australia/Lord_Howe",
              [(_ny(2023, 4, 1, 14, 50), False), (_ny(2023, 4, 2, 14, 0), True)]),
    # Chatham (+12:45/+13:45) and Kathmandu (+5:45): quarter-hour offsets.
    StoreCase("x-chatham", [(d, "03:00", "04:00") for d in range(7)], "Pacific/Chatham",
              [(_ny(2023, 9, 23, 13, 30), True), (_ny(2023, 9, 23, 14, 30), False)]),
    StoreCase("x-kathmandu", [(0, "00:00", "00:00"), (1, "23:59:59", "00:00:01")],
              "Asia/Kathmandu", [(_ny(2023, 1, 23, 0, 0), True), (_ny(2023, 1, 23, 0, 0, 3),
                                                                   False)]),
    # Overlapping windows count once; a poll exactly at a window start is in hours, at its
    # end is not.
    StoreCase("x-overlap", [(2, "08:00", "12:00"), (2, "10:00", "14:00"), (2, "09:00", "13:00")],
              "Europe/Berlin", [(_ny(2023, 3, 29, 6, 0), False), (_ny(2023, 3, 29, 12, 0), True)]),
]
# The as-of instants that matter for each explicit store (the oracle is run only for those).
EXPLICIT_AS_OF = {
    "x-old-in-hours": [_ny(2023, 1, 24, 12, 0), _ny(2023, 1, 23, 16, 0)],
    "x-overnight-spring": [_ny(2023, 3, 12, 7, 0), _ny(2023, 3, 12, 12, 0)],
    "x-fall-back": [_ny(2023, 11, 5, 5, 30), _ny(2023, 11, 5, 12, 0)],
    "x-santiago": [_ny(2023, 9, 3, 4, 0), _ny(2023, 9, 3, 12, 0)],
    "x-lord-howe": [_ny(2023, 4, 2, 16, 0), _ny(2023, 4, 3, 0, 0)],
    "x-chatham": [_ny(2023, 9, 24, 3, 0)],
    "x-kathmandu": [_ny(2023, 1, 24, 0, 0)],
    "x-overlap": [_ny(2023, 3, 30, 0, 0), _ny(2023, 3, 29, 11, 30)],
}


def test_explicit_corners_match_oracle(run_engine, tmp_path):
    instants = sorted({a for values in EXPLICIT_AS_OF.values() for a in values})
    frames = dict(zip(instants, run_engine(EXPLICIT_STORES, instants, tmp_path, poll_files=2),
                      strict=True))
    for store in EXPLICIT_STORES:
        for as_of in EXPLICIT_AS_OF[store.store_id]:
            frame = frames[as_of]
            assert_agrees(frame[frame["store_id"] == store.store_id].reset_index(drop=True),
                          oracle_report([store], as_of))


def test_explicit_corners_hand_checked():
    by_id = {s.store_id: s for s in EXPLICIT_STORES}
    # The old in-hours poll (inactive) rules: the week's Monday 09:00-17:00 CST is down.
    r = store_result(by_id["x-old-in-hours"], _ny(2023, 1, 24, 12, 0))
    assert r.usable_polls == 1 and not r.fallback
    assert r.down_seconds[7 * DAY] == 8 * HOUR and r.up_seconds[7 * DAY] == 0
    # Sat 2023-03-11 22:00 EST (03:00 UTC) to 03:00 EDT (07:00 UTC): 4 h; midpoint of the
    # polls 05:29:59.5 UTC.
    r = store_result(by_id["x-overnight-spring"], _ny(2023, 3, 12, 12, 0))
    assert r.up_seconds[DAY] == 2.5 * HOUR - 0.5 and r.down_seconds[DAY] == 1.5 * HOUR + 0.5
    # Lord Howe Sun 2023-04-02 01:45 LHDT (Apr 1 14:45 UTC) to Mon 01:45 LHST (Apr 2 15:15
    # UTC): 24.5 h in the week; the day [Apr 1 16:00, Apr 2 16:00) holds 23.25 h of it.
    r = store_result(by_id["x-lord-howe"], _ny(2023, 4, 2, 16, 0))
    assert r.up_seconds[7 * DAY] + r.down_seconds[7 * DAY] == 24.5 * HOUR
    assert r.up_seconds[DAY] + r.down_seconds[DAY] == 23.25 * HOUR
    # Santiago: Sat 20:00-24:00 is Sep 3 00:00-04:00 UTC (24:00 = the jump to 01:00); Sun
    # 00:00-01:00 is empty; Sun 00:30 + 24 h starts at the jump: 04:00-12:00 UTC is in the day.
    # The duplicate at 04:00 UTC is inactive: up until the midpoint 03:59:59.5.
    r = store_result(by_id["x-santiago"], _ny(2023, 9, 3, 12, 0))
    assert r.up_seconds[DAY] == 4 * HOUR - 0.5 and r.down_seconds[DAY] == 8 * HOUR + 0.5


# --- a live feed: long histories, stray rows, changed hours ----------------------------------
# A report reads a bounded look-back and searches older polls only for the stores that need
# them (engine/report.py); these patterns reach past the look-back on purpose.

HISTORY_PATTERNS = ["old_only", "silent", "stray", "old_in_hours", "hourly", "outside"]


@st.composite
def history_polls(draw, intervals, pattern: str):
    """Polls as (seconds relative to T, active) that reach weeks before T."""
    if pattern == "old_only":  # nothing for weeks before T
        return _random_polls(draw, -50 * DAY, -10 * DAY, max_size=4)
    if pattern == "silent":  # hourly, then silent for days up to T
        stop = draw(st.integers(-9 * DAY, -HOUR))
        start = stop - draw(st.integers(DAY, 30 * DAY))
        step = draw(st.integers(3000, 4200))
        return [(o, draw(statuses)) for o in range(start, stop, step)][:400]
    if pattern == "stray":  # regular polls, and a valid poll or two far older than the rest
        regular = draw(poll_offsets(intervals, "hourly"))
        return regular + _random_polls(draw, -60 * DAY, -40 * DAY, max_size=2)
    if pattern == "old_in_hours":  # the only in-hours poll is weeks old; recent ones are not
        outside = draw(poll_offsets(intervals, "outside"))
        if intervals is None:
            return outside
        old = intervals[(intervals[:, 0] < -10 * DAY) & (intervals[:, 1] > -40 * DAY)]
        if len(old) == 0:
            return outside
        a, b = old[draw(st.integers(0, len(old) - 1))]
        return outside + [(int(draw(st.integers(int(a), int(b) - 1))), draw(statuses))]
    return draw(poll_offsets(intervals, pattern))


@st.composite
def history_scenarios(draw, max_stores: int = 5):
    anchor = draw(st.sampled_from(ANCHORS))
    t = anchor + draw(st.integers(-DAY, 8 * DAY))
    stores, replaced = [], {}
    for index in range(draw(st.integers(1, max_stores))):
        store_id, zone, hours, special, intervals = _store_basics(draw, index, t, 62 * DAY)
        polls = []
        for pattern in draw(st.lists(st.sampled_from(HISTORY_PATTERNS), min_size=1, max_size=2)):
            polls += draw(history_polls(intervals, pattern))
        if draw(st.booleans()):  # the hours changed since an earlier snapshot
            replaced[store_id] = draw(valid_hours_strategy)
        stores.append(StoreCase(
            store_id, hours, zone, [(from_unix(t + o), a) for o, a in polls], special))
    return stores, t, replaced


@settings(max_examples=round(30 * SCALE), **COMMON)
@given(data=st.data(), scenario=history_scenarios())
def test_long_histories_match_oracle(run_engine, data, scenario):
    """Stores whose only polls are weeks old, stores silent for days, stray polls far older than
    the rest, an in-hours poll only weeks back, and hours replaced by a later snapshot: the
    bounded report still agrees with the oracle, at T and at instants around it."""
    stores, t, replaced = scenario
    more = data.draw(st.lists(st.integers(-3 * DAY, DAY).map(lambda d: t + d), max_size=2),
                     label="more_as_of")
    expected = [oracle_report(stores, x) for x in [t, *more]]
    with tempfile.TemporaryDirectory(prefix="storemon-oracle-") as folder:
        engine = run_engine(stores, [from_unix(x) for x in [t, *more]], Path(folder),
                            replaced_hours=replaced)
    for got, want in zip(engine, expected, strict=True):
        assert_agrees(got, want)


# --- instants with fractions of a second, windows ending at a transition ---------------------
TICKS = 4  # quarter seconds: the oracle is exact on this grid

DST_ZONES = ["America/New_York", "America/St_Johns", "Europe/Berlin", "Australia/Lord_Howe",
             "Pacific/Chatham", "America/Santiago", "Australia/Sydney"]


def _transitions_2023(zone: str) -> list[tuple[int, int, int]]:
    """(UTC second of the change, offset before, offset after) of each 2023 transition, found
    minute by minute with zoneinfo (tzdb transitions are on whole minutes)."""
    tz = ZoneInfo(zone)
    found = []
    start = _utc(2023, 1, 1, 0, 0)
    minutes = np.arange(0, 365 * 24 * 60, dtype=np.int64) * 60 + start
    offsets = pd.DatetimeIndex(minutes * 10**9, tz="UTC").tz_convert(tz).tz_localize(None)
    offsets = offsets.asi8 // 10**9 - minutes
    for i in np.flatnonzero(offsets[1:] != offsets[:-1]):
        found.append((int(minutes[i + 1]), int(offsets[i]), int(offsets[i + 1])))
    return found


TRANSITIONS = {zone: _transitions_2023(zone) for zone in DST_ZONES}


@st.composite
def transition_scenarios(draw):
    """One to three stores around one transition of their zone, with windows that start or end
    exactly at the wall-clock time just before or just after it; T and the first polls have
    fractions of a second."""
    zone = draw(st.sampled_from(DST_ZONES))
    change, before, after = draw(st.sampled_from(TRANSITIONS[zone]))
    t = change * TICKS + draw(st.integers(-2 * DAY * TICKS, 3 * DAY * TICKS))
    stores = []
    for index in range(draw(st.integers(1, 3))):
        rows = []
        for _ in range(draw(st.integers(1, 3))):
            wall = change + draw(st.sampled_from([before, after]))  # local seconds of the edge
            day = int(((wall // DAY) + 3) % 7)  # 1970-01-01 was a Thursday
            edge = int(wall % DAY)
            other = draw(local_seconds)
            if draw(st.booleans()):
                rows.append((day, fmt_local(other, False), fmt_local(edge, True)))
            else:
                rows.append((day, fmt_local(edge, True), fmt_local(other, False)))
        special = []
        for _ in range(draw(st.sampled_from([0, 0, 1, 2]))):
            # a special date on the transition night (or the evening before it, overnight into
            # it) whose window starts or ends at the edge, or that closes the whole date
            wall = change + draw(st.sampled_from([before, after]))
            day, edge = int(wall // DAY), int(wall % DAY)
            date = local_date_text(day - draw(st.sampled_from([0, 0, 1])))
            other = fmt_local(draw(local_seconds), False)
            special += draw(st.sampled_from([
                [(date, "", "")],
                [(date, other, fmt_local(edge, True))],
                [(date, fmt_local(edge, True), other)],
                [(date, "", ""), (date, fmt_local(edge, True), other)],
            ]))
        first = t - draw(st.integers(6 * DAY * TICKS, 9 * DAY * TICKS))
        step = draw(st.integers(3000 * TICKS, 4200 * TICKS))
        polls = [(from_ticks(p, TICKS), draw(statuses))
                 for p in range(first, t + HOUR * TICKS, step)][:300]
        polls += [(from_ticks(t + draw(st.integers(-8 * DAY * TICKS, 0)), TICKS), draw(statuses))
                  for _ in range(draw(st.integers(0, 4)))]
        stores.append(StoreCase(f"edge-{index}", rows, zone, polls, special))
    return stores, t


@settings(max_examples=round(25 * SCALE), **COMMON)
@given(scenario=transition_scenarios())
def test_fractional_instants_and_windows_at_transitions_match_oracle(run_engine, scenario):
    stores, t = scenario
    expected = oracle_report(stores, t, ticks=TICKS)
    with tempfile.TemporaryDirectory(prefix="storemon-oracle-") as folder:
        engine = run_engine(stores, from_ticks(t, TICKS), Path(folder))
    assert_agrees(engine, expected)


def test_st_johns_fall_back_with_a_fractional_first_poll(run_engine, tmp_path):
    """Regression: open 00:00-02:00 every day in America/St_Johns; the clocks go back at 02:00
    NDT (04:30 UTC) on Sunday 2023-11-05, and the wall clock first reads 02:00 at 02:00 NST
    (05:30 UTC): that Sunday holds 3 h of business time. The first poll has a fraction of a
    second, which once carried into the transition and cut the window at 04:30."""
    first = datetime(2023, 10, 29, 1, 9, 25, 555843, tzinfo=UTC)
    polls = [(first + timedelta(hours=h), True) for h in range(179)]
    store = StoreCase("stj", [(d, "00:00", "02:00") for d in range(7)], "America/St_Johns",
                      polls)
    frame = run_engine([store], None, tmp_path)  # as of the latest poll, 11:09:25.555843 UTC
    row = frame.iloc[0]
    assert row.uptime_last_day + row.downtime_last_day == pytest.approx(3.0, abs=1e-9)
    assert row.uptime_last_week + row.downtime_last_week == pytest.approx(15.0, abs=1e-9)


@settings(max_examples=round(25 * SCALE), **COMMON)
@given(data=st.data(), scenario=history_scenarios(max_stores=4))
def test_reports_between_ingests_match_oracle(data, scenario):
    """A live feed: polls arrive in several deliveries (some late, older than what came
    before; the hours may change in between), and a report follows each delivery. Reports
    remember what their search before the look-back found (search_memo): whatever arrives
    later, every report agrees with the oracle on the polls delivered so far."""
    from support.oracle import write_feeds

    from storemon_pipeline.engine.db import connect
    from storemon_pipeline.engine.ingest import ingest_paths
    from storemon_pipeline.engine.report import report_frame

    stores, t, replaced = scenario
    deliveries = data.draw(st.integers(2, 3), label="deliveries")
    arrival = {  # (store, poll) -> delivery: mostly in time order, some late
        (i, j): data.draw(st.integers(0, deliveries - 1)) if data.draw(st.booleans())
        else min(deliveries - 1, max(0, (to_unix(p) - t + 40 * DAY) * deliveries // (42 * DAY)))
        for i, store in enumerate(stores) for j, (p, _) in enumerate(store.polls)
    }
    with tempfile.TemporaryDirectory(prefix="storemon-oracle-") as folder:
        con = connect(Path(folder) / "storemon.duckdb")
        try:
            for k in range(deliveries):
                delivered = [
                    StoreCase(s.store_id, replaced.get(s.store_id, s.hours) if k == 0 else s.hours,
                              s.zone, [p for j, p in enumerate(s.polls) if arrival[i, j] <= k])
                    for i, s in enumerate(stores)
                ]
                paths = write_feeds(delivered, Path(folder) / f"delivery_{k}", seed=k)
                ingest_paths(con, [*paths["hours"], *paths["timezones"], *paths["polls"]])
                known = [s for s in delivered if s.polls]
                if not known:
                    continue
                as_of = t - DAY * data.draw(st.integers(0, 3), label=f"days_before_{k}")
                assert_agrees(report_frame(con, from_unix(as_of)), oracle_report(delivered, as_of))
        finally:
            con.close()
