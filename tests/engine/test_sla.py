"""SLA periods (docs/semantics.md §2.17): the engine (engine/sla.py) against the brute-force
oracle's periods (tests/support/oracle.py, second by second), against itself (a month is the sum
of its days; a week ending at T is the report's week as of T), and the `storemon sla` command.
"""

from __future__ import annotations

import csv
import re
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st
from support.oracle import (
    DAY,
    HOUR,
    WEEK,
    StoreCase,
    from_unix,
    local_instant,
    oracle_period,
    to_unix,
    write_feeds,
)
from test_oracle import (
    ANCHORS,
    COMMON,
    HISTORY_PATTERNS,
    PATTERNS,
    SCALE,
    _store_basics,
    history_polls,
    hours_strategy,
    local_date_text,
    poll_offsets,
    scenarios,
    special_rows,
)

from storemon_pipeline import cli
from storemon_pipeline.engine.db import connect, database
from storemon_pipeline.engine.ingest import ingest_paths
from storemon_pipeline.engine.report import compute_report
from storemon_pipeline.engine.sla import (
    SLA_COLUMNS,
    Period,
    PeriodError,
    compute_sla,
    local_days,
    month_period,
    sla_incident_frame,
    sla_micros,
    utc_period,
    week_period,
)

SECOND_US = 1_000_000


def _ingest(stores: list[StoreCase], folder: Path):
    """The stores' feeds written as a user would drop them, ingested into a new DuckDB file."""
    paths = write_feeds(stores, folder)
    con = connect(folder / "storemon.duckdb")
    results = ingest_paths(con, [p for feed in ("polls", "hours", "special", "timezones")
                                 for p in paths[feed]])
    assert all(r.status in ("loaded", "skipped") for r in results), [r.summary() for r in results]
    return con


def _incidents(con) -> pd.DataFrame:
    return con.execute(
        "SELECT period_id, store_id, incident_start_us, incident_end_us, "
        "sla_incidents.business_us FROM sla_incidents JOIN stores USING (store_key) "
        "ORDER BY period_id, store_id, incident_start_us"
    ).df()


def _utc_unix(instant: datetime) -> int:
    return to_unix(instant.replace(tzinfo=UTC))


def _store_bounds(store: StoreCase, period: Period) -> tuple[int, int]:
    if period.local:
        return local_instant(store.zone, period.start), local_instant(store.zone, period.end)
    return _utc_unix(period.start), _utc_unix(period.end)


def assert_periods_agree(con, stores, periods, latest: int, *, only=None) -> None:
    """Every period of sla_results against the oracle: the same stores, bounds, business time,
    uptime and downtime, and the same incidents (to the half second the oracle samples).
    ``only``: the store ids compared (default: all)."""
    micros = sla_micros(con)
    if only is not None:
        micros = micros[micros["store_id"].isin(only)]
    incidents = _incidents(con)
    problems = []
    for period_id, period in enumerate(periods):
        got = micros[micros["period_id"] == period_id].set_index("store_id")
        as_of = None if period.as_of is None else _utc_unix(period.as_of)
        expected = {}
        for store in stores:
            start, end = _store_bounds(store, period)
            result = oracle_period(store, start, end, latest, as_of)
            if result is not None:
                expected[store.store_id] = result
        assert set(got.index) == set(expected), (period, set(got.index), set(expected))
        for store_id, want in expected.items():
            row = got.loc[store_id]
            label = f"period {period_id} {period} store {store_id}"
            if to_unix(row["period_start"].to_pydatetime()) != want.start or to_unix(
                    row["period_end"].to_pydatetime()) != want.end:
                problems.append(f"{label}: bounds {row['period_start']} {row['period_end']} "
                                f"vs {from_unix(want.start)} {from_unix(want.end)}")
            for column, seconds in (("business_us", want.business_seconds),
                                    ("uptime_us", want.up_seconds),
                                    ("downtime_us", want.down_seconds)):
                if row[column] != round(seconds * SECOND_US):
                    problems.append(f"{label}: {column} {row[column]} vs oracle {seconds} s")
            mine = incidents[(incidents["period_id"] == period_id)
                             & (incidents["store_id"] == store_id)]
            got_runs = [(a / SECOND_US, b / SECOND_US, c / SECOND_US) for a, b, c in zip(
                mine["incident_start_us"], mine["incident_end_us"], mine["business_us"],
                strict=True)]
            if got_runs != want.incidents:
                problems.append(f"{label}: incidents {got_runs} vs oracle {want.incidents}")
            if want.incidents:
                event("a store with incidents")
                if len(want.incidents) != row["incidents"]:
                    problems.append(f"{label}: {row['incidents']} incidents")
                longest = max(c for _, _, c in want.incidents)
                if row["longest_incident_us"] != round(longest * SECOND_US):
                    problems.append(f"{label}: longest {row['longest_incident_us']}")
            # an incident's business time is downtime, and all downtime is in incidents
            if row["incident_us"] != row["downtime_us"]:
                problems.append(f"{label}: incidents {row['incident_us']} us, downtime "
                                f"{row['downtime_us']} us")
            if row["business_us"] == 0:
                event("a store-period without business time")
                assert pd.isna(row["availability_pct"]) and pd.isna(row["target_met"])
    assert not problems, "\n".join(problems[:20])


# --- periods against the oracle -------------------------------------------------------------


@st.composite
def sticky_polls(draw, lo: int, hi: int):
    """About one poll an hour in [lo, hi) (relative seconds) whose status changes now and
    then: down for hours, overnight, for days."""
    step = draw(st.integers(2400, 4800))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    offsets = np.arange(lo + int(rng.integers(0, step)), hi, step)
    offsets = offsets + rng.integers(-400, 400, size=len(offsets))
    flips = rng.random(len(offsets)) < draw(st.sampled_from([0.03, 0.1, 0.3]))
    status = (np.cumsum(flips) % 2 == 0) ^ draw(st.booleans())
    return [(int(o), bool(a)) for o, a in zip(offsets, status, strict=True)]


def _inside(draw, intervals: np.ndarray) -> int:
    """A second inside one of the windows (relative to T)."""
    a, b = intervals[draw(st.integers(0, len(intervals) - 1))]
    return int(draw(st.integers(int(a), int(b) - 1)))


@st.composite
def period_scenarios(draw):
    """Stores around a transition night (zones east and west of UTC, special dates; polls of
    every pattern of the report's oracle tests, long histories too), and a few periods:
    ending at T, starting and ending inside business windows, the local days around the night,
    past the latest poll (cut there, or empty), and as of later than their end."""
    anchor = draw(st.sampled_from(ANCHORS))
    t = anchor + draw(st.integers(-6 * HOUR, 6 * HOUR))
    stores, windows = [], []
    for index in range(draw(st.integers(1, 4))):
        store_id, zone, hours, special, intervals = _store_basics(
            draw, index, t, 45 * DAY, anchor)
        polls = []
        for pattern in draw(st.lists(st.sampled_from([*PATTERNS, "sticky", "sticky", "history"]),
                                     min_size=1, max_size=2)):
            if pattern == "sticky":
                polls += draw(sticky_polls(-10 * DAY, DAY))
            elif pattern == "history":  # weeks old, silent for days, stray, old in hours
                polls += draw(history_polls(intervals, draw(st.sampled_from(HISTORY_PATTERNS))))
            else:
                polls += draw(poll_offsets(intervals, pattern))
        stores.append(StoreCase(
            store_id, hours, zone, [(from_unix(t + o), a) for o, a in polls], special))
        if intervals is not None:
            kept = intervals[(intervals[:, 0] > -8 * DAY) & (intervals[:, 1] < DAY)]
            if len(kept):
                windows.append(kept)
    polls = [to_unix(p) for s in stores for p, _ in s.polls]
    latest = max(polls, default=t)
    periods = []
    for _ in range(draw(st.integers(1, 3))):
        kind = draw(st.sampled_from(
            ["ending_at_t", "in_windows", "in_windows", "local_day", "past_latest", "as_of"]))
        if kind == "in_windows" and windows:
            chosen = draw(st.sampled_from(windows))
            start, end = sorted([_inside(draw, chosen), _inside(draw, chosen)])
            periods.append(utc_period(from_unix(t + start), from_unix(t + end + 1)))
        elif kind == "local_day":
            day = anchor // DAY + draw(st.integers(-1, 1))
            first = datetime.fromisoformat(local_date_text(day))
            length = draw(st.sampled_from([1, 1, 2]))
            periods.append(Period(first, first + timedelta(days=length), True, "local"))
        elif kind == "past_latest":
            start = latest + draw(st.one_of(st.integers(-3 * DAY, -1), st.integers(0, DAY)))
            periods.append(utc_period(from_unix(start), from_unix(start + DAY)))
        elif kind == "as_of":
            end = t - draw(st.integers(0, 3 * DAY))
            period = utc_period(from_unix(end - DAY), from_unix(end))
            later = from_unix(end + draw(st.integers(0, 2 * DAY)))
            periods.append(Period(period.start, period.end, False, "as of later", later))
        else:
            length = draw(st.sampled_from([HOUR, DAY, 3 * DAY, WEEK]))
            periods.append(utc_period(from_unix(t - length), from_unix(t)))
    return stores, periods


@settings(max_examples=round(40 * SCALE), **COMMON)
@given(data=st.data(), scenario=period_scenarios())
def test_periods_match_oracle(data, scenario):
    """All the periods in one pass agree with the oracle; some stores alone (a shard) get
    exactly their rows of all the stores' (unknown ids: nothing)."""
    stores, periods = scenario
    polls = [to_unix(p) for s in stores for p, _ in s.polls]
    subset = data.draw(st.lists(st.sampled_from([s.store_id for s in stores]), unique=True),
                       label="subset")
    with tempfile.TemporaryDirectory(prefix="storemon-sla-") as folder:
        con = _ingest(stores, Path(folder))
        try:
            if not polls:
                return
            compute_sla(con, periods)
            assert_periods_agree(con, stores, periods, max(polls))
            everyone = sla_micros(con)
            compute_sla(con, periods, [*subset, "not-a-store"])
            some = sla_micros(con)
        finally:
            con.close()
    pd.testing.assert_frame_equal(  # (an empty frame's columns have other dtypes)
        some.reset_index(drop=True),
        everyone[everyone["store_id"].isin(subset)].reset_index(drop=True), check_dtype=False)


# --- a month is the sum of its days -----------------------------------------------------------

# months with a transition somewhere (east and west of UTC), and a quiet one
MONTHS = ["2023-03", "2023-04", "2023-09", "2023-10", "2023-11", "2023-07"]
MONTH_ZONES = ["America/New_York", "America/St_Johns", "America/Santiago", "Europe/Berlin",
               "Australia/Sydney", "Australia/Lord_Howe", "Pacific/Chatham", "Asia/Kathmandu",
               "America/Chicago"]


@st.composite
def month_scenarios(draw):
    month = month_period(draw(st.sampled_from(MONTHS)))
    zone = draw(st.sampled_from(MONTH_ZONES))
    start = local_instant(zone, month.start)
    end = local_instant(zone, month.end)
    # the polls run past the month, or stop inside it (the month is cut at the latest poll)
    last = end + DAY if draw(st.booleans()) else start + draw(st.integers(2 * DAY, 28 * DAY))
    days = list(range(start // DAY - 1, end // DAY + 1))
    stores = []
    for index in range(draw(st.integers(1, 3))):
        hours = draw(hours_strategy())
        special = draw(special_rows([days[0], days[1], days[-1], days[-2], *days[5:9]]))
        polls = draw(sticky_polls(0, last - start + 2 * DAY))
        # Chicago stores without a zone row are in the default zone
        store_zone = None if zone == "America/Chicago" and draw(st.booleans()) else zone
        stores.append(StoreCase(
            f"m{index}", hours, store_zone,
            [(from_unix(start - 2 * DAY + o), a) for o, a in polls
             if start - 2 * DAY + o <= last], special))
    return month, zone, stores


@settings(max_examples=round(8 * SCALE), **COMMON)
@given(scenario=month_scenarios())
def test_month_is_the_sum_of_its_days(scenario):
    """In one pass: the month, its local days each as of its own end, and its days as of the
    month's as-of. The days of either kind add up to the month's business time to the
    microsecond, and as the month saw them to its uptime, downtime and incident time too; the
    days tile the month. The month itself agrees with the oracle."""
    month, zone, stores = scenario
    latest = max(to_unix(p) for s in stores for p, _ in s.polls)
    month_as_of = from_unix(min(local_instant(zone, month.end), latest))
    own_days = local_days(month)
    seen_days = local_days(month, as_of=month_as_of)
    periods = [month, *own_days, *seen_days]
    with tempfile.TemporaryDirectory(prefix="storemon-sla-") as folder:
        con = _ingest(stores, Path(folder))
        try:
            compute_sla(con, periods)
            micros = sla_micros(con)
            assert_periods_agree(con, stores[:1], [month], latest, only=[stores[0].store_id])
        finally:
            con.close()
    whole = micros[micros["period_id"] == 0].set_index("store_id")
    own = micros[micros["period_id"].between(1, len(own_days))]
    seen = micros[micros["period_id"] > len(own_days)]
    for store_id, row in whole.iterrows():
        mine = seen[seen["store_id"] == store_id].sort_values("period_id")
        assert len(mine) == len(seen_days)
        for column in ("business_us", "uptime_us", "downtime_us", "incident_us"):
            assert mine[column].sum() == row[column], (store_id, column)
        assert own[own["store_id"] == store_id]["business_us"].sum() == row["business_us"]
        # the days that hold something tile the month; the days after its end are empty
        held = mine[mine["period_end"] > mine["period_start"]]
        starts, ends = list(held["period_start"]), list(held["period_end"])
        assert starts[0] == row["period_start"] and ends[-1] == row["period_end"]
        assert ends[:-1] == starts[1:]
        assert (mine["period_start"] < row["period_end"]).sum() == len(held)
        if row["downtime_us"]:
            event("a month with downtime")
        if row["period_end"] < pd.Timestamp(local_instant(zone, month.end), unit="s"):
            event("a month cut at the latest poll")


# --- a week ending at T is the report's week ------------------------------------------------


@settings(max_examples=round(15 * SCALE), **COMMON)
@given(data=st.data(), scenario=scenarios(max_stores=5))
def test_periods_ending_at_t_are_the_reports_periods(data, scenario):
    """[T - 7 days, T), [T - 1 day, T) and [T - 1 h, T) give exactly the report's week, day
    and hour as of T (T at or before the latest poll), to the microsecond."""
    stores, t = scenario
    polls = [to_unix(p) for s in stores for p, _ in s.polls]
    if not polls:
        return
    t = min(t, max(polls)) - data.draw(st.sampled_from([0, 0, 1, HOUR, DAY]), label="before")
    as_of = from_unix(t).replace(tzinfo=None)
    periods = [utc_period(as_of - timedelta(seconds=length), as_of)
               for length in (WEEK, DAY, HOUR)]
    with tempfile.TemporaryDirectory(prefix="storemon-sla-") as folder:
        con = _ingest(stores, Path(folder))
        try:
            compute_report(con, as_of)
            report = con.execute("SELECT * FROM report_results ORDER BY store_id").df()
            compute_sla(con, periods)
            micros = sla_micros(con)
        finally:
            con.close()
    for period_id, name in enumerate(("week", "day", "hour")):
        mine = micros[micros["period_id"] == period_id].reset_index(drop=True)
        assert list(mine["store_id"]) == list(report["store_id"])
        assert list(mine["uptime_us"]) == list(report[f"uptime_{name}_us"]), name
        assert list(mine["business_us"]) == list(report[f"business_{name}_us"]), name


# --- the worked example of §2.17 and the command -------------------------------------------


def utc(*args) -> datetime:
    return datetime(*args, tzinfo=UTC)


# docs/semantics.md §2.17: store E, America/Chicago (UTC-6 until 2023-03-12), open every day
# 09:00-21:00; polls Monday 2023-03-06 18:00 local (active), 20:00 (inactive), Tuesday 10:00
# (inactive), 12:00 (active), Wednesday 09:30 (active, after the period).
STORE_E = StoreCase(
    "E", [(d, "09:00", "21:00") for d in range(7)], "America/Chicago",
    [(utc(2023, 3, 7, 0, 0), True), (utc(2023, 3, 7, 2, 0), False),
     (utc(2023, 3, 7, 16, 0), False), (utc(2023, 3, 7, 18, 0), True),
     (utc(2023, 3, 8, 15, 30), True)],
)
# 24x7 in UTC, down for the first 18 seconds of the period (0.005 h: rounded half up, 0.01)
STORE_R = StoreCase("R", [], "UTC", [(utc(2023, 3, 6, 15, 0), False),
                                     (utc(2023, 3, 6, 15, 0, 36), True)])
# open on Thursdays only: no business time in the period
STORE_Z = StoreCase("Z", [(3, "09:00", "17:00")], "Europe/Berlin",
                    [(utc(2023, 3, 2, 10, 0), True)])
STORE_007 = StoreCase("007", [], None, [(utc(2023, 3, 6, 12, 0), True)])
CLI_STORES = [STORE_E, STORE_R, STORE_Z, STORE_007]
PERIOD = ("--from", "2023-03-06T15:00:00Z", "--to", "2023-03-08T03:00:00Z")


def test_worked_example_one_incident_overnight(tmp_path):
    """§2.17: down from Monday 19:00 to Tuesday 11:00 local is one incident of 4 business
    hours (2 h on Monday evening, 2 h on Tuesday morning), however long the night."""
    con = _ingest([STORE_E], tmp_path)
    try:
        period = utc_period(utc(2023, 3, 6, 15), utc(2023, 3, 8, 3))
        compute_sla(con, [period], target_pct=99.0)
        row = sla_micros(con).iloc[0]
        incidents = _incidents(con)
        listed = sla_incident_frame(con, 0, ["E"])
        # its whole month of March, as if polls had reached April: 743 hours
        compute_sla(con, [month_period("2023-03")], latest=datetime(2023, 4, 2))
        month = sla_micros(con).iloc[0]
    finally:
        con.close()
    assert (month["period_start"], month["period_end"]) == (
        pd.Timestamp("2023-03-01 06:00"), pd.Timestamp("2023-04-01 05:00"))
    assert row["business_us"] == 24 * HOUR * SECOND_US
    assert row["uptime_us"] == 20 * HOUR * SECOND_US
    assert row["incidents"] == 1 and row["longest_incident_us"] == 4 * HOUR * SECOND_US
    assert not row["target_met"]
    assert row["availability_pct"] == pytest.approx(100 * 20 / 24)
    assert listed.to_dict("records") == [{
        "store_id": "E", "incident_start": pd.Timestamp("2023-03-07 01:00"),
        "incident_end": pd.Timestamp("2023-03-07 17:00"), "business_minutes": 240.0}]
    start, end = incidents.iloc[0][["incident_start_us", "incident_end_us"]]
    assert (start, end) == (to_unix(utc(2023, 3, 7, 1)) * SECOND_US,
                            to_unix(utc(2023, 3, 7, 17)) * SECOND_US)
    assert oracle_period(STORE_E, to_unix(utc(2023, 3, 6, 15)), to_unix(utc(2023, 3, 8, 3)),
                         to_unix(utc(2023, 3, 8, 15, 30))).incidents == [
        (to_unix(utc(2023, 3, 7, 1)), to_unix(utc(2023, 3, 7, 17)), 4 * HOUR)]


def _sla(home: Path, capsys, *args: str) -> tuple[int, str, str]:
    status = cli.main(["sla", *args])
    captured = capsys.readouterr()
    return status, captured.out, captured.err


@pytest.fixture
def sla_home(tmp_path, monkeypatch):
    home = tmp_path / "state"
    monkeypatch.setenv("STOREMON_HOME", str(home))
    monkeypatch.delenv("STOREMON_SLA_TARGET_PCT", raising=False)
    monkeypatch.delenv("STOREMON_SHARDS", raising=False)
    paths = write_feeds(CLI_STORES, tmp_path / "feeds")
    assert cli.main(["ingest", *map(str, [p for ps in paths.values() for p in ps])]) == 0
    return home


def test_sla_command_csv_and_summary(sla_home, tmp_path, capsys):
    capsys.readouterr()
    out = tmp_path / "sla.csv"
    status, stdout, stderr = _sla(sla_home, capsys, *PERIOD, "--out", str(out))
    assert status == 0, stderr
    with open(out, newline="") as handle:
        rows = list(csv.reader(handle))
    assert rows[0] == SLA_COLUMNS
    assert [r[0] for r in rows[1:]] == ["007", "E", "R", "Z"]  # sorted as text
    bounds = ["2023-03-06T15:00:00+00:00", "2023-03-08T03:00:00+00:00"]
    assert rows[1] == ["007", *bounds, "36.00", "36.00", "0.00", "100.00", "0", "0.00", "",
                       "true"]
    assert rows[2] == ["E", *bounds, "24.00", "20.00", "4.00", "83.33", "1", "240.00",
                       "240.00", "false"]
    # 18 s down: 0.005 h and 35.995 h up, 99.98611 %, each rounded half up; one incident of
    # 0.3 min
    assert rows[3] == ["R", *bounds, "36.00", "36.00", "0.01", "99.99", "1", "0.30", "0.30",
                       "true"]
    assert rows[4] == ["Z", *bounds, "0.00", "0.00", "0.00", "", "0", "0.00", "", ""]
    # the fleet: (36 + 20 + 35.995) / (36 + 24 + 36) h
    assert "4 stores, 1 below the target of 99 %, 1 without business time" in stdout
    assert "the fleet's availability 95.83 %" in stdout
    assert f"written to {out}" in stdout

    # the setting's target, and --target over it
    env_target = tmp_path / "target.csv"
    import os
    os.environ["STOREMON_SLA_TARGET_PCT"] = "80"
    try:
        status, stdout, _ = _sla(sla_home, capsys, *PERIOD, "--out", str(env_target))
    finally:
        del os.environ["STOREMON_SLA_TARGET_PCT"]
    assert status == 0 and "0 below the target of 80 %" in stdout
    status, stdout, _ = _sla(sla_home, capsys, *PERIOD, "--target", "99.99", "--out", str(out))
    assert status == 0 and "2 below the target of 99.99 %" in stdout

    # a local month, cut at the latest poll; some stores only
    status, stdout, stderr = _sla(sla_home, capsys, "--month", "2023-03", "--store", "E",
                                  "--store", "Z", "--out", str(out))
    assert status == 0, stderr
    with open(out, newline="") as handle:
        rows = list(csv.reader(handle))
    assert [r[0] for r in rows[1:]] == ["E", "Z"]
    assert rows[1][1:3] == ["2023-03-01T06:00:00+00:00", "2023-03-08T15:30:00+00:00"]
    assert rows[2][1] == "2023-02-28T23:00:00+00:00"  # midnight in Berlin
    assert "2023-03 (each store's local period" in stdout

    status, stdout, stderr = _sla(sla_home, capsys, "--week", "2023-W10", "--out", str(out))
    assert status == 0, stderr
    with open(out, newline="") as handle:
        rows = list(csv.reader(handle))
    assert rows[2][1] == "2023-03-06T06:00:00+00:00"  # Monday 00:00 in Chicago


def test_sla_command_over_shards_is_the_one_file_csv(sla_home, tmp_path, capsys, monkeypatch):
    one_file = tmp_path / "one.csv"
    assert _sla(sla_home, capsys, "--month", "2023-03", "--out", str(one_file))[0] == 0
    monkeypatch.setenv("STOREMON_HOME", str(tmp_path / "sharded"))
    monkeypatch.setenv("STOREMON_SHARDS", "3")
    paths = write_feeds(CLI_STORES, tmp_path / "feeds")
    assert cli.main(["ingest", *map(str, [p for ps in paths.values() for p in ps])]) == 0
    sharded = tmp_path / "sharded.csv"
    status, stdout, stderr = _sla(sla_home, capsys, "--month", "2023-03", "--out", str(sharded))
    assert status == 0, stderr
    assert sharded.read_bytes() == one_file.read_bytes()
    assert "4 stores" in stdout


@pytest.mark.parametrize("shards", [1, 3])
def test_settle_command_changes_no_number(shards, tmp_path, capsys, monkeypatch):
    """`storemon settle` settles the days that have ended, in one file or each shard; the
    month's CSV is the same, byte for byte, read from them as from the polls alone."""
    monkeypatch.setenv("STOREMON_HOME", str(tmp_path / "state"))
    monkeypatch.setenv("STOREMON_SHARDS", str(shards))
    monkeypatch.delenv("STOREMON_SLA_TARGET_PCT", raising=False)
    paths = write_feeds(CLI_STORES, tmp_path / "feeds")
    assert cli.main(["ingest", *map(str, [p for ps in paths.values() for p in ps])]) == 0
    before, after = tmp_path / "before.csv", tmp_path / "after.csv"
    assert _sla(tmp_path, capsys, "--month", "2023-03", "--out", str(before))[0] == 0
    assert cli.main(["settle"]) == 0
    out = capsys.readouterr().out
    # E's days from March 1st (its first poll's month) to the 7th: the 8th ends after the delay
    assert re.search(r"settled \d+ local day\(s\) of 4 store\(s\)", out), out
    assert "store-days" in out
    assert _sla(tmp_path, capsys, "--month", "2023-03", "--out", str(after))[0] == 0
    assert after.read_bytes() == before.read_bytes()
    assert cli.main(["settle"]) == 0
    assert capsys.readouterr().out.startswith("settled 0 local day(s) of 0 store(s)")


def test_sla_command_errors(sla_home, tmp_path, capsys):
    capsys.readouterr()
    out = tmp_path / "sla.csv"
    status, _, stderr = _sla(sla_home, capsys, "--from", "2023-03-08T00:00:00Z", "--to",
                             "2023-03-08T00:00:00Z", "--out", str(out))
    assert status == 2 and "--to (2023-03-08 00:00:00 UTC) must be after --from" in stderr
    for args, message in [
        (("--month", "2023-13"), "not a month YYYY-MM: '2023-13'"),
        (("--month", "March"), "not a month YYYY-MM: 'March'"),
        (("--week", "2023-W54"), "2023 has no week 54"),
        (("--week", "2023-10"), "not an ISO week YYYY-Www: '2023-10'"),
        (("--month", "2023-03", "--week", "2023-W10"), "give one period"),
        (("--from", "2023-03-08T00:00:00Z"), "give --from and --to together"),
        ((), "give one period"),
        (("--month", "2023-03", "--target", "101"), "a target is a percentage within 0-100"),
        (("--month", "2023-03", "--store", "4 2"), "not a store id"),
    ]:
        status, _, stderr = _sla(sla_home, capsys, *args, "--out", str(out))
        assert status == 2 and message in stderr, (args, stderr)
    assert not out.exists()
    # an unknown store: an empty CSV and a note
    status, stdout, stderr = _sla(sla_home, capsys, *PERIOD, "--store", "nope", "--out",
                                  str(out))
    assert status == 0 and "no poll of store(s) nope" in stderr
    assert out.read_text() == ",".join(SLA_COLUMNS) + "\n"
    assert "0 stores" in stdout and "availability n/a" in stdout


def test_periods_are_checked():
    with pytest.raises(PeriodError, match="must be after its start"):
        utc_period(datetime(2023, 3, 2), datetime(2023, 3, 1))
    assert month_period("2023-12").end == datetime(2024, 1, 1)
    assert week_period("2020-W53").start == datetime(2020, 12, 28)
    assert len(local_days(month_period("2024-02"))) == 29
    with pytest.raises(PeriodError, match="year must be within"):
        month_period("1969-12")


def test_store_chunks_give_the_same_results(sample_state):
    """The sample month in chunks of about 5,000 polls of consecutive store keys, with the local
    days too: the same rows and incidents, to the microsecond, as in one pass."""
    month = month_period("2023-01")
    periods = [month, *local_days(month)]
    with database(sample_state / "storemon.duckdb", read_only=True) as con:
        (polls,) = con.execute("SELECT count(*) FROM polls").fetchone()
        assert polls > 20 * 5_000  # many chunks
        compute_sla(con, periods)
        whole, whole_incidents = sla_micros(con), _incidents(con)
        compute_sla(con, periods, polls_per_chunk=5_000)
        chunked, chunked_incidents = sla_micros(con), _incidents(con)
    assert (whole.period_id == 0).sum() == 1500 and len(whole_incidents) > 1500
    pd.testing.assert_frame_equal(chunked, whole)
    pd.testing.assert_frame_equal(chunked_incidents, whole_incidents)
