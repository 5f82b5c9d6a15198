"""A store's timeline (engine/explain.py) against the report and the oracle: its values are the
report's row, its windows and status segments add up to them to the microsecond, and the polls
it marks as used are the oracle's usable polls."""

from __future__ import annotations

import csv
import tempfile
from datetime import datetime
from pathlib import Path

import pytest
from engine.test_oracle import COMMON, scenarios
from hypothesis import given, settings
from support.oracle import (
    DAY,
    StoreCase,
    business_intervals,
    from_unix,
    to_ticks,
    usable_polls,
    write_feeds,
)

from storemon_pipeline.engine.db import database
from storemon_pipeline.engine.explain import (
    Interval,
    MalformedStoreIdError,
    StoreTimeline,
    UnknownStoreError,
    explain_store,
    explain_stores,
    timeline_text,
)
from storemon_pipeline.engine.ingest import ingest_paths
from storemon_pipeline.engine.report import write_report_csv

UNITS_US = {"hour": 60_000_000, "day": 3_600_000_000, "week": 3_600_000_000}


def overlap_us(intervals: list[Interval], start: datetime, end: datetime) -> int:
    total = 0
    for interval in intervals:
        lo, hi = max(interval.start, start), min(interval.end, end)
        if hi > lo:
            delta = hi - lo
            total += (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds
    return total


def two_decimals(duration_us: int, unit_us: int) -> float:
    """Round half up to 2 decimals on integers, as the CSV does (docs/semantics.md §2.10)."""
    return ((duration_us * 100 + unit_us // 2) // unit_us) / 100


def assert_adds_up(timeline: StoreTimeline, row: dict[str, str]) -> None:
    assert timeline.values == {k: float(v) for k, v in row.items() if k != "store_id"}
    runs = timeline.status_runs
    assert all(
        a.end == b.start and a.active != b.active for a, b in zip(runs, runs[1:], strict=False)
    ), "status runs are contiguous and alternate"
    assert runs[0].start == timeline.week.start and runs[-1].end == timeline.as_of
    up = [s for s in timeline.segments if s.active]
    down = [s for s in timeline.segments if not s.active]
    for name, period in timeline.periods.items():
        business = overlap_us(timeline.business_windows, period.start, period.end)
        uptime = overlap_us(up, period.start, period.end)
        assert business == period.business_us, f"{name}: windows add up to the business time"
        assert uptime == period.uptime_us, f"{name}: up segments add up to the uptime"
        assert overlap_us(down, period.start, period.end) == business - uptime
        assert timeline.values[f"uptime_last_{name}"] == two_decimals(uptime, UNITS_US[name])
        assert timeline.values[f"downtime_last_{name}"] == two_decimals(
            business - uptime, UNITS_US[name]
        )


def oracle_used_polls(store: StoreCase, t: int) -> set[int]:
    """The oracle's usable polls of the week [T - 7 days, T], in Unix seconds."""
    earliest = min([t - 9 * DAY, *[to_ticks(p) for p, _ in store.polls if to_ticks(p) <= t]])
    intervals = business_intervals(store.hours, store.zone, earliest, t + 1, store.special)
    times, _ = usable_polls(store, t, intervals)
    return {int(x) for x in times if x >= t - 7 * DAY}


@settings(max_examples=30, **COMMON)
@given(scenario=scenarios(max_stores=4))
def test_timeline_values_are_the_report_row_and_add_up(scenario):
    stores, t = scenario
    as_of = from_unix(t).replace(tzinfo=None)
    with tempfile.TemporaryDirectory(prefix="storemon-explain-") as folder:
        folder = Path(folder)
        paths = write_feeds(stores, folder / "feeds")
        with database(folder / "storemon.duckdb") as con:
            ingest_paths(con, [p for feed in ("polls", "hours", "special", "timezones")
                               for p in paths[feed]])
            write_report_csv(con, folder / "report.csv", as_of)
            with open(folder / "report.csv", newline="") as file:
                rows = {row["store_id"]: row for row in csv.DictReader(file)}
            # all of them at once, as concurrent requests are served: each as if alone
            together = explain_stores(con, [store.store_id for store in stores], as_of)
            assert set(together) == {store.store_id for store in stores if store.polls}
            for store in stores:
                if not store.polls:
                    with pytest.raises(UnknownStoreError):
                        explain_store(con, store.store_id, as_of)
                    continue
                timeline = explain_store(con, store.store_id, as_of)
                assert together[store.store_id] == timeline
                if store.store_id not in rows:
                    assert timeline.values is None and not timeline.polls
                    continue
                assert_adds_up(timeline, rows[store.store_id])
                week_polls = {
                    to_ticks(p.ts) for p in timeline.polls
                    if p.used and p.ts >= timeline.week.start
                }
                assert week_polls == oracle_used_polls(store, t)
                assert all(
                    (p.ts >= timeline.week.start) or p.used for p in timeline.polls
                ), "a poll before the week is shown only when the report used it"


def test_malformed_and_unknown_ids(sample_state):
    with database(sample_state / "storemon.duckdb", read_only=True) as con:
        with pytest.raises(MalformedStoreIdError):
            explain_store(con, "1; DROP TABLE polls")
        with pytest.raises(UnknownStoreError):
            explain_store(con, "1234567890")


# --- special dates (docs/semantics.md §2.16): each shown with the weekly rows it replaced ------

SPECIAL_AS_OF = datetime(2023, 1, 26, 5)  # Thursday 00:00 in New York: the week is 19-25 Jan
WEEKLY_9_TO_5 = "".join(f"{{store}},{day},09:00,17:00\n" for day in range(7))
SPECIAL_FEEDS = {
    "hours.csv": "store_id,day,start_time_local,end_time_local\n" + "".join(
        WEEKLY_9_TO_5.format(store=store) for store in ("closed", "short", "overnight", "mixed")
    ),
    "special.csv": "store_id,date,start_time_local,end_time_local,reason\n"
    "closed,2023-01-10,,,too early to show\n"
    "closed,2023-01-22,,,Lunar New Year\n"
    "closed,2023-01-26,,,after the week\n"
    "short,2023-01-23,10:00,14:00,inventory\n"
    "overnight,2023-01-18,22:00,03:00,night shift\n"  # the day before the week reaches into it
    "overnight,2023-01-21,20:00,02:00,late-night event\n"
    "allday,2023-01-22,,,Lunar New Year\n"
    "mixed,2023-01-24,,,inventory\n"  # a closed row and a window: the window counts
    "mixed,2023-01-24,14:00,17:00,inventory: opens late\n",
    "tz.csv": "store_id,timezone_str\n" + "".join(
        f"{store},America/New_York\n"
        for store in ("closed", "short", "overnight", "allday", "mixed")
    ),
    "polls.csv": "store_id,status,timestamp_utc\n" + "".join(
        f"{store},active,2023-01-25 15:00:00 UTC\n"
        for store in ("closed", "short", "overnight", "allday", "mixed")
    ),
}
SUNDAY_9_TO_5 = [{"day_of_week": 6, "day": "Sunday", "start_local": "09:00:00",
                  "end_local": "17:00:00"}]


@pytest.fixture(scope="module")
def special_timelines(tmp_path_factory) -> dict[str, StoreTimeline]:
    folder = tmp_path_factory.mktemp("explain-special")
    for name, text in SPECIAL_FEEDS.items():
        (folder / name).write_text(text)
    with database(folder / "storemon.duckdb") as con:
        ingest_paths(con, [folder])
        write_report_csv(con, folder / "report.csv", SPECIAL_AS_OF)
        with open(folder / "report.csv", newline="") as file:
            rows = {row["store_id"]: row for row in csv.DictReader(file)}
        timelines = {store: explain_store(con, store, SPECIAL_AS_OF) for store in rows}
        assert explain_stores(con, list(rows), SPECIAL_AS_OF) == timelines
    for store, timeline in timelines.items():
        assert_adds_up(timeline, rows[store])
    return timelines


def business_hours_of_week(timeline: StoreTimeline) -> float:
    return timeline.periods["week"].business_us / 3_600_000_000


def test_a_closed_date_names_the_weekly_rows_it_replaced(special_timelines):
    timeline = special_timelines["closed"]
    assert timeline.as_json()["special_dates"] == [{
        "date": "2023-01-22", "day": "Sunday", "closed": True, "windows": [],
        "reason": "Lunar New Year", "replaced_weekly": SUNDAY_9_TO_5,
        "replaced_open_24x7": False,
    }]
    assert business_hours_of_week(timeline) == 6 * 8
    assert not [w for w in timeline.business_windows
                if datetime(2023, 1, 22, 5) <= w.start < datetime(2023, 1, 23, 5)]


def test_a_shorter_date_has_its_special_window_only(special_timelines):
    timeline = special_timelines["short"]
    [special] = timeline.as_json()["special_dates"]
    assert special["windows"] == [{"start_local": "10:00:00", "end_local": "14:00:00"}]
    assert not special["closed"] and special["reason"] == "inventory"
    assert special["replaced_weekly"] == [{**SUNDAY_9_TO_5[0], "day_of_week": 0, "day": "Monday"}]
    assert business_hours_of_week(timeline) == 6 * 8 + 4
    assert Interval(datetime(2023, 1, 23, 15), datetime(2023, 1, 23, 19)) in (
        timeline.business_windows
    )


def test_an_overnight_special_runs_into_the_next_date(special_timelines):
    """Also from the day before the week: its overnight window reaches into the week."""
    timeline = special_timelines["overnight"]
    dates = timeline.as_json()["special_dates"]
    assert [(d["date"], d["windows"], d["reason"]) for d in dates] == [
        ("2023-01-18", [{"start_local": "22:00:00", "end_local": "03:00:00"}], "night shift"),
        ("2023-01-21", [{"start_local": "20:00:00", "end_local": "02:00:00"}],
         "late-night event"),
    ]
    # 19-25 Jan 9-5 but 21 Jan, the 3 hours after midnight on the 19th, 20:00 to 02:00 the 21st
    assert business_hours_of_week(timeline) == 6 * 8 + 3 + 6
    windows = timeline.business_windows
    assert windows[0] == Interval(datetime(2023, 1, 19, 5), datetime(2023, 1, 19, 8))
    assert Interval(datetime(2023, 1, 22, 1), datetime(2023, 1, 22, 7)) in windows
    assert Interval(datetime(2023, 1, 22, 14), datetime(2023, 1, 22, 22)) in windows


def test_a_store_without_weekly_hours_replaces_a_day_open_24x7(special_timelines):
    timeline = special_timelines["allday"]
    [special] = timeline.as_json()["special_dates"]
    assert special["closed"] and special["replaced_weekly"] == []
    assert special["replaced_open_24x7"] and timeline.as_json()["open_24x7"]
    assert business_hours_of_week(timeline) == 6 * 24


def test_a_closed_row_beside_a_window_leaves_the_window(special_timelines):
    timeline = special_timelines["mixed"]
    [special] = timeline.as_json()["special_dates"]
    assert not special["closed"]
    assert special["windows"] == [{"start_local": "14:00:00", "end_local": "17:00:00"}]
    assert special["reason"] == "inventory; inventory: opens late"
    assert business_hours_of_week(timeline) == 6 * 8 + 3


def test_the_text_shows_the_special_dates(special_timelines):
    sections = {
        store: timeline_text(special_timelines[store]).split("special dates (")[1].split("\n\n")[0]
        for store in ("closed", "overnight", "allday", "mixed")
    }
    assert "Sun 2023-01-22" in sections["closed"] and "Lunar New Year" in sections["closed"]
    assert "closed" in sections["closed"] and "09:00-17:00" in sections["closed"]
    assert "2023-01-10" not in sections["closed"] and "2023-01-26" not in sections["closed"]
    assert "20:00-02:00 (next day)" in sections["overnight"]
    assert "Wed 2023-01-18" in sections["overnight"]
    assert "open 24x7" in sections["allday"]
    assert "14:00-17:00" in sections["mixed"] and "inventory; inventory: opens late" in (
        sections["mixed"]
    )
    assert "special dates (" in timeline_text(special_timelines["short"])
