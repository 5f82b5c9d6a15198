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
    intervals = business_intervals(store.hours, store.zone, earliest, t + 1)
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
            ingest_paths(con, [p for feed in ("polls", "hours", "timezones") for p in paths[feed]])
            write_report_csv(con, folder / "report.csv", as_of)
            with open(folder / "report.csv", newline="") as file:
                rows = {row["store_id"]: row for row in csv.DictReader(file)}
            for store in stores:
                if not store.polls:
                    with pytest.raises(UnknownStoreError):
                        explain_store(con, store.store_id, as_of)
                    continue
                timeline = explain_store(con, store.store_id, as_of)
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
