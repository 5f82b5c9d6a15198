"""Alerts (docs/semantics.md §2.18): the worked examples verbatim, the edge rules, and the engine
(engine/alerts.py) against an oracle written here from the rule, over the report oracle's
scenarios (tests/support/oracle.py) delivered in several files, in and out of order, with an
evaluation after each ingest; replaying the same files into a new state gives the same alerts
and events."""

from __future__ import annotations

import json
import math
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import Phase, event, given, settings
from hypothesis import strategies as st
from support.alert_scenario import EVERY_DAY, chicago
from support.oracle import (
    DAY,
    StoreCase,
    business_intervals,
    from_unix,
    to_unix,
    usable_polls,
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
    poll_offsets,
)
from test_sla import sticky_polls

from storemon_pipeline import cli
from storemon_pipeline.engine.alerts import evaluate_alerts, read_alerts, read_outbox
from storemon_pipeline.engine.db import connect
from storemon_pipeline.engine.ingest import ingest_paths

# An example ingests up to eight files: shrinking a failing one takes many minutes, so the
# failure is reported as found (the label names the delivery, T and the threshold).
WITHOUT_SHRINKING = {**COMMON, "phases": [Phase.explicit, Phase.reuse, Phase.generate]}


class Feed:
    """A state folder that polls are delivered to, one file per delivery, each followed by an
    evaluation of the alerts."""

    def __init__(self, folder: Path, stores: list[StoreCase], minutes: float = 30) -> None:
        self.folder = folder
        self.stores = stores  # hours, zone and special rows; their polls are ignored
        self.minutes = minutes
        self.con = connect(folder / "storemon.duckdb")
        self.deliveries = 0

    def deliver(self, polls: dict[str, list[tuple[datetime, bool]]]):
        delivered = [StoreCase(s.store_id, s.hours, s.zone, polls.get(s.store_id, []), s.special)
                     for s in self.stores]
        paths = write_feeds(delivered, self.folder / f"delivery_{self.deliveries}",
                            seed=self.deliveries)
        self.deliveries += 1
        results = ingest_paths(self.con, [*paths["hours"], *paths["special"],
                                          *paths["timezones"], *paths["polls"]])
        assert all(r.status in ("loaded", "skipped") for r in results), \
            [r.summary() for r in results]
        return evaluate_alerts(self.con, min_down_minutes=self.minutes)

    def alerts(self) -> pd.DataFrame:
        return read_alerts(self.con)

    def events(self) -> list[dict]:
        return [json.loads(p) for p in read_outbox(self.con)["payload"]]

    def close(self) -> None:
        self.con.close()


def _one(feed: Feed) -> pd.Series:
    alerts = feed.alerts()
    assert len(alerts) == 1, alerts
    return alerts.iloc[0]


# --- the worked examples of docs/semantics.md §2.18 ------------------------------------------


def test_worked_example_down_through_a_closed_evening(tmp_path):
    feed = Feed(tmp_path, [StoreCase("D", EVERY_DAY, "America/Chicago")])
    first = feed.deliver({"D": [(chicago(6, 20), True), (chicago(6, 20, 40), False)]})
    assert (first.opened, first.open) == (0, 0)  # 20 business minutes
    assert feed.alerts().empty
    second = feed.deliver({"D": [(chicago(7, 10), False)]})
    assert (second.opened, second.open) == (1, 1)
    alert = _one(feed)
    assert alert["state"] == "open"
    assert alert["down_since"] == datetime(2023, 3, 7, 2, 20)
    assert alert["business_minutes_down"] == 100
    third = feed.deliver({"D": [(chicago(7, 11, 40), True)]})
    assert (third.opened, third.resolved, third.open) == (0, 1, 0)
    alert = _one(feed)
    assert alert["state"] == "resolved"
    assert alert["resolved_at"] == datetime(2023, 3, 7, 16, 50)
    assert alert["business_minutes_down"] == 150
    opened, resolved = feed.events()
    assert opened == {
        "event": "opened", "alert_id": alert["alert_id"], "store_id": "D",
        "down_since": "2023-03-07T02:20:00+00:00", "resolved_at": None,
        "business_minutes_down": 100.0, "timezone": "America/Chicago",
        "text": "Store D is down since 2023-03-06 20:20 America/Chicago (2023-03-07 02:20 UTC): "
                "100.00 business minutes so far",
    }
    assert resolved["event"] == "resolved"
    assert resolved["resolved_at"] == "2023-03-07T16:50:00+00:00"
    assert resolved["business_minutes_down"] == 150.0
    assert resolved["text"] == (
        "Store D is back up at 2023-03-07 10:50 America/Chicago (2023-03-07 16:50 UTC) after "
        "150.00 business minutes down since 2023-03-06 20:20"
    )
    keys = read_outbox(feed.con)["event_key"].tolist()
    assert keys == [f"{alert['alert_id']}:opened", f"{alert['alert_id']}:resolved"]
    feed.close()


def test_worked_example_down_only_outside_its_hours(tmp_path):
    feed = Feed(tmp_path, [StoreCase("N", EVERY_DAY, "America/Chicago")])
    for poll in [(chicago(6, 22), True), (chicago(6, 23), False), (chicago(7, 2), False),
                 (chicago(7, 6), True)]:
        result = feed.deliver({"N": [poll]})
        assert (result.opened, result.open) == (0, 0)
    assert feed.alerts().empty and feed.events() == []


def test_a_closed_special_date_counts_as_closed(tmp_path):
    """Down 8 business minutes on Monday evening, the Tuesday closed: still 8; Wednesday
    09:30 makes 38."""
    feed = Feed(tmp_path, [StoreCase("C", EVERY_DAY, "America/Chicago",
                                     special=[("2023-03-07", "", "")])])
    feed.deliver({"C": [(chicago(6, 20, 50), True), (chicago(6, 20, 54), False)]})
    assert feed.deliver({"C": [(chicago(7, 16), False)]}).opened == 0
    assert feed.deliver({"C": [(chicago(8, 9, 30), False)]}).opened == 1
    alert = _one(feed)
    assert alert["down_since"] == chicago(6, 20, 52)
    assert alert["business_minutes_down"] == 38
    feed.close()


def _utc(hour: int, minute: int = 0) -> datetime:
    return datetime(2023, 3, 6, hour, minute)


def test_worked_example_a_late_poll(tmp_path):
    feed = Feed(tmp_path, [StoreCase("G", [], "UTC")])
    result = feed.deliver({"G": [(_utc(10), True), (_utc(11), False), (_utc(12), False)]})
    assert (result.opened, result.open) == (1, 1)
    alert = _one(feed)
    alert_id = alert["alert_id"]
    assert (alert["down_since"], alert["business_minutes_down"]) == (_utc(10, 30), 90)
    result = feed.deliver({"G": [(_utc(11, 30), True), (_utc(13), False)]})
    assert (result.opened, result.resolved, result.updated, result.open) == (0, 0, 1, 1)
    alert = _one(feed)
    assert alert["alert_id"] == alert_id and alert["state"] == "open"
    assert (alert["down_since"], alert["business_minutes_down"]) == (_utc(11, 45), 75)
    result = feed.deliver({"G": [(_utc(14), True)]})
    assert (result.opened, result.resolved, result.open) == (0, 1, 0)
    resolved = _one(feed)
    assert (resolved["state"], resolved["resolved_at"], resolved["business_minutes_down"]) == (
        "resolved", _utc(13, 30), 105)
    result = feed.deliver({"G": [(_utc(13, 50), False)]})
    assert (result.as_of, result.opened, result.resolved, result.open) == (_utc(14), 0, 0, 0)
    assert _one(feed).equals(resolved)
    assert [e["event"] for e in feed.events()] == ["opened", "resolved"]
    feed.close()


# --- the edge rules -------------------------------------------------------------------------


def test_an_open_alert_shortened_below_the_threshold_stays_open(tmp_path):
    feed = Feed(tmp_path, [StoreCase("G", [], "UTC")])
    feed.deliver({"G": [(_utc(10), True), (_utc(11), False), (_utc(12), False)]})
    result = feed.deliver({"G": [(_utc(11, 50), True), (_utc(12, 10), False)]})
    assert (result.opened, result.resolved, result.open) == (0, 0, 1)
    alert = _one(feed)
    assert (alert["down_since"], alert["business_minutes_down"]) == (_utc(11, 55), 15)
    feed.close()


def test_an_open_alert_whose_run_a_late_poll_ended_resolves_in_the_past(tmp_path):
    feed = Feed(tmp_path, [StoreCase("G", [], "UTC"), StoreCase("H", [], "UTC")])
    feed.deliver({"G": [(_utc(10), True), (_utc(11), False), (_utc(12), False)]})
    # G's active poll at 12:20 arrives with H's poll at 13:00, the latest
    result = feed.deliver({"G": [(_utc(12, 20), True)], "H": [(_utc(13), True)]})
    assert (result.resolved, result.open) == (1, 0)
    alert = _one(feed)
    assert (alert["down_since"], alert["resolved_at"], alert["resolved_as_of"]) == (
        _utc(10, 30), _utc(12, 10), _utc(13))
    assert alert["business_minutes_down"] == 100
    feed.close()


def test_an_inactive_twin_revives_a_resolved_run_without_a_new_alert(tmp_path):
    """The poll that ended the run turns inactive (§1.2): the store is down again in the same
    run, which starts before its resolved alert ended: nothing is opened or announced."""
    feed = Feed(tmp_path, [StoreCase("G", [], "UTC"), StoreCase("H", [], "UTC")])
    feed.deliver({"G": [(_utc(10), True), (_utc(11), False), (_utc(12), False)]})
    feed.deliver({"G": [(_utc(13), True)]})
    result = feed.deliver({"G": [(_utc(13), False)], "H": [(_utc(14), True)]})
    assert (result.opened, result.resolved, result.open) == (0, 0, 0)
    assert _one(feed)["state"] == "resolved"
    assert len(feed.events()) == 2
    # up again, then down in a new run: a new alert
    result = feed.deliver({"G": [(_utc(15), True), (_utc(16), False)], "H": [(_utc(17), True)]})
    assert (result.opened, result.open) == (1, 1)
    assert feed.alerts()["down_since"].tolist() == [_utc(15, 30), _utc(10, 30)]
    feed.close()


def test_first_evaluation_of_a_loaded_state_opens_only_current_runs(tmp_path):
    hourly = [_utc(0) + timedelta(hours=h) for h in range(48)]
    feed = Feed(tmp_path, [StoreCase("past", [], "UTC"), StoreCase("now", [], "UTC")])
    result = feed.deliver({
        "past": [(t, not 10 <= i < 20) for i, t in enumerate(hourly)],  # down for 10 hours
        "now": [(t, i < 45) for i, t in enumerate(hourly)],  # down for the last 3
    })
    assert (result.opened, result.resolved, result.open) == (1, 0, 1)
    alert = _one(feed)
    assert (alert["store_id"], alert["down_since"]) == ("now", hourly[44] + timedelta(minutes=30))
    feed.close()


def test_a_store_down_for_weeks_gets_its_whole_run(tmp_path):
    """A run that starts weeks before the latest poll is read by passes reaching further back
    than the report's week, for that store only."""
    start = datetime(2023, 1, 2, 12)
    feed = Feed(tmp_path, [StoreCase("long", EVERY_DAY, "UTC"), StoreCase("busy", [], "UTC")])
    result = feed.deliver({
        "long": [(start, True)] + [(start + timedelta(days=d, hours=1), False)
                                   for d in range(40)],
        "busy": [(start + timedelta(days=40), True)],
    })
    assert (result.opened, result.open) == (1, 1) and result.passes > 1
    alert = _one(feed)
    assert alert["down_since"] == start + timedelta(minutes=30)
    # from 12:30 on the first day, 12 hours a day, to 12:00 on the 40th day (T)
    assert alert["business_minutes_down"] == (8.5 + 39 * 12 + 3) * 60
    feed.close()


def test_no_polls_and_bad_threshold(tmp_path):
    con = connect(tmp_path / "empty.duckdb")
    result = evaluate_alerts(con)
    assert (result.as_of, result.open, result.opened) == (None, 0, 0)
    with pytest.raises(ValueError):
        evaluate_alerts(con, min_down_minutes=-1)
    with pytest.raises(ValueError):
        read_alerts(con, state="closed")
    con.close()


def test_alerts_command(tmp_path, monkeypatch, capsys):
    home = tmp_path / "state"
    monkeypatch.setenv("STOREMON_HOME", str(home))
    monkeypatch.delenv("STOREMON_SHARDS", raising=False)
    monkeypatch.setenv("STOREMON_ALERT_MIN_DOWN_MINUTES", "60")
    stores = [StoreCase("G", [], "UTC", [(_utc(10), True), (_utc(11), False), (_utc(12), False)]),
              StoreCase("H", [], "UTC", [(_utc(11), True), (_utc(11, 40), False),
                                         (_utc(12), False)])]  # 40 minutes
    paths = write_feeds(stores, tmp_path / "feeds")
    assert cli.main(["ingest", *map(str, [p for ps in paths.values() for p in ps])]) == 0
    capsys.readouterr()
    assert cli.main(["alerts"]) == 0
    assert capsys.readouterr().out == "no alerts\n"
    assert cli.main(["alerts", "--evaluate", "--open"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == ("evaluated as of the latest poll 2023-03-06 12:00:00 UTC (at least 60 "
                      "business minutes down): 1 opened, 0 resolved, 1 open")
    assert out[1] == "events: 1 pending, 0 delivered, 0 dead (given up) to 0 webhook(s)"
    assert out[2].split() == ["alert_id", "store_id", "state", "down_since", "resolved_at",
                              "business_minutes_down"]
    assert out[3].split()[1:] == ["G", "open", "2023-03-06", "10:30:00", "UTC", "90.00"]
    assert cli.main(["alerts", "--store", "H"]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == "no alerts"
    assert cli.main(["alerts", "--store", "not a store"]) == 2


# --- against the oracle -----------------------------------------------------------------------


@dataclass(frozen=True)
class OracleRun:
    down: bool  # at T
    start: float | None  # the down run (None: none), Unix seconds
    end: float  # T when down, else where the active run current at T starts
    business: float  # seconds


def _business_between(intervals: np.ndarray | None, a: float, b: float) -> float:
    if intervals is None:
        return max(0.0, b - a)
    total, reach = 0.0, a
    for lo, hi in sorted(map(tuple, intervals)):
        lo, hi = max(lo, reach), min(hi, b)
        if hi > lo:
            total += hi - lo
            reach = hi
    return total


def oracle_runs(store: StoreCase, polls: list[tuple[datetime, bool]], t: int) -> OracleRun | None:
    """The store's down run as of T by the rule of §2.18, from the report oracle's usable polls
    and windows."""
    seconds = [to_unix(p) for p, _ in polls if to_unix(p) <= t]
    if not seconds:
        return None
    first = min(seconds)
    intervals = business_intervals(store.hours, store.zone, first - 2 * DAY, t + 1,
                                   store.special)
    case = StoreCase(store.store_id, store.hours, store.zone, polls, store.special)
    times, active = usable_polls(case, t, intervals)
    times = [int(x) for x in times]

    def run_start(k: int) -> float:  # the run whose first poll is k
        return max(first, -math.inf if k == 0 else (times[k - 1] + times[k]) / 2)

    def first_of_run(k: int) -> int:
        while k > 0 and active[k - 1] == active[k]:
            k -= 1
        return k

    last = first_of_run(len(times) - 1)
    if not active[-1]:
        start = run_start(last)
        return OracleRun(True, start, t, _business_between(intervals, start, t))
    end = run_start(last)
    if last == 0:
        return OracleRun(False, None, end, 0.0)
    start = run_start(first_of_run(last - 1))
    return OracleRun(False, start, end, _business_between(intervals, start, end))


class OracleAlerts:
    """The rule of §2.18 evaluated on the oracle's runs, evaluation after evaluation."""

    def __init__(self, threshold_seconds: float) -> None:
        self.threshold = threshold_seconds
        self.open: dict[str, tuple[float, float]] = {}  # store: (down_since, business)
        self.resolved: list[tuple[str, float, float, float]] = []  # store, since, at, business

    def evaluate(self, runs: dict[str, OracleRun], t: int) -> tuple[int, int]:
        opened = resolved = 0
        for store_id, (since, business) in list(self.open.items()):
            run = runs.get(store_id)
            if run is not None and run.down:
                self.open[store_id] = (run.start, run.business)
                continue
            del self.open[store_id]
            resolved += 1
            if run is None:
                self.resolved.append((store_id, since, t, business))
            elif run.start is None:
                self.resolved.append((store_id, since, max(run.end, since), business))
            else:
                self.resolved.append((store_id, run.start, max(run.end, run.start),
                                      run.business))
        for store_id, run in runs.items():
            if not run.down or store_id in self.open or run.business <= 0 \
                    or run.business < self.threshold:
                continue
            ended = [at for s, _, at, _ in self.resolved if s == store_id]
            if ended and run.start < max(ended):
                continue
            self.open[store_id] = (run.start, run.business)
            opened += 1
        return opened, resolved


@st.composite
def alert_scenarios(draw):
    """Stores around a transition night with polls of the report oracle's patterns (long
    down runs, weeks-old histories too), delivered in 1-4 files, in time order or not."""
    anchor = draw(st.sampled_from(ANCHORS))
    t = anchor + draw(st.integers(-DAY, 6 * DAY))
    stores = []
    for index in range(draw(st.integers(1, 4))):
        store_id, zone, hours, special, intervals = _store_basics(
            draw, index, t, 45 * DAY, anchor)
        polls = []
        for pattern in draw(st.lists(st.sampled_from([*PATTERNS, "sticky", "sticky", "sticky",
                                                      "history"]), min_size=1, max_size=2)):
            if pattern == "sticky":
                polls += draw(sticky_polls(-10 * DAY, DAY))
            elif pattern == "history":
                polls += draw(history_polls(intervals, draw(st.sampled_from(HISTORY_PATTERNS))))
            else:
                polls += draw(poll_offsets(intervals, pattern))
        stores.append(StoreCase(
            store_id, hours, zone, [(from_unix(t + o), a) for o, a in polls], special))
    deliveries = draw(st.integers(1, 4))
    in_order = draw(st.booleans())
    arrival = {}
    span_from = min([to_unix(p) for s in stores for p, _ in s.polls], default=t)
    span_to = max([to_unix(p) for s in stores for p, _ in s.polls], default=t) + 1
    for i, store in enumerate(stores):
        for j, (p, _) in enumerate(store.polls):
            if in_order or draw(st.integers(0, 3)):  # mostly in time order, some late
                arrival[i, j] = (to_unix(p) - span_from) * deliveries // (span_to - span_from)
            else:
                arrival[i, j] = draw(st.integers(0, deliveries - 1))
    minutes = draw(st.sampled_from([0, 1, 30, 30, 240]))
    return stores, deliveries, arrival, minutes


def _unix(value) -> float:
    return (pd.Timestamp(value).tz_localize(UTC) - pd.Timestamp(0, tz=UTC)).value / 1e9


def _run_deliveries(folder: Path, stores, deliveries, arrival, minutes, check=None):
    feed = Feed(folder, stores, minutes)
    try:
        for k in range(deliveries):
            polls = {s.store_id: [p for j, p in enumerate(s.polls) if arrival[i, j] == k]
                     for i, s in enumerate(stores)}
            result = feed.deliver(polls)
            if check is not None:
                check(k, result, feed)
        return feed.alerts(), read_outbox(feed.con)
    finally:
        feed.close()


@settings(max_examples=round(20 * SCALE), **WITHOUT_SHRINKING)
@given(scenario=alert_scenarios())
def test_alerts_match_the_oracle_delivery_after_delivery(scenario):
    stores, deliveries, arrival, minutes = scenario
    oracle = OracleAlerts(minutes * 60)
    resolved_rows: dict[str, pd.Series] = {}
    seen_events: set[str] = set()

    def check(k, result, feed):
        delivered = {s.store_id: [p for j, p in enumerate(s.polls) if arrival[i, j] <= k]
                     for i, s in enumerate(stores)}
        known = [to_unix(p) for ps in delivered.values() for p, _ in ps]
        if not known:
            assert result.as_of is None
            return
        t = max(known)
        assert result.as_of == from_unix(t).replace(tzinfo=None)
        runs = {s.store_id: run for s in stores
                if (run := oracle_runs(s, delivered[s.store_id], t)) is not None}
        opened, resolved = oracle.evaluate(runs, t)
        alerts = feed.alerts()
        label = f"delivery {k}, T {from_unix(t)}, threshold {minutes} min"
        assert (result.opened, result.resolved) == (opened, resolved), label
        got_open = {
            row.store_id: (_unix(row.down_since), row.business_minutes_down * 60)
            for row in alerts[alerts["state"] == "open"].itertuples()
        }
        assert set(got_open) == set(oracle.open), (label, got_open, oracle.open)
        for store_id, (since, business) in oracle.open.items():
            assert got_open[store_id][0] == pytest.approx(since, abs=1e-6), (label, store_id)
            assert got_open[store_id][1] == pytest.approx(business, abs=1e-6), (label, store_id)
        got_resolved = sorted(
            (row.store_id, _unix(row.down_since), _unix(row.resolved_at),
             row.business_minutes_down * 60)
            for row in alerts[alerts["state"] == "resolved"].itertuples()
        )
        want_resolved = sorted(oracle.resolved)
        assert [r[0] for r in got_resolved] == [r[0] for r in want_resolved], label
        assert np.allclose([r[1:] for r in got_resolved], [r[1:] for r in want_resolved],
                           rtol=0, atol=1e-6), (label, got_resolved, want_resolved)
        # a resolved alert never changes, reopens or is announced again
        for row in alerts.itertuples():
            if row.alert_id in resolved_rows:
                assert alerts.set_index("alert_id").loc[row.alert_id].drop(
                    "evaluated_as_of").equals(resolved_rows[row.alert_id]), label
        for row in alerts[alerts["state"] == "resolved"].itertuples():
            resolved_rows.setdefault(
                row.alert_id, alerts.set_index("alert_id").loc[row.alert_id].drop(
                    "evaluated_as_of"))
        keys = set(read_outbox(feed.con)["event_key"])
        assert seen_events <= keys
        seen_events.update(keys)
        if result.opened:
            event("an alert opened")
        if result.resolved:
            event("an alert resolved")
        if result.passes > 1:
            event("a run before the week")

    with tempfile.TemporaryDirectory(prefix="storemon-alerts-") as folder:
        alerts, outbox = _run_deliveries(Path(folder) / "live", stores, deliveries, arrival,
                                         minutes, check)
        replayed, replayed_outbox = _run_deliveries(Path(folder) / "replay", stores, deliveries,
                                                    arrival, minutes)
    # one opened event per alert, one resolved event per resolved alert, and runs of one
    # store never overlap
    events = outbox["event_key"].tolist()
    assert sorted(events) == sorted(
        [f"{a}:opened" for a in alerts["alert_id"]]
        + [f"{a}:resolved" for a in alerts.loc[alerts["state"] == "resolved", "alert_id"]])
    for _, mine in alerts.sort_values("opened_as_of").groupby("store_id"):
        rows = list(mine.itertuples())
        for before, after in zip(rows, rows[1:], strict=False):
            assert before.state == "resolved" and before.resolved_at <= after.down_since
    # the same files into a new state: the same alerts and events
    assert alerts.equals(replayed)
    columns = ["event_key", "alert_id", "event", "payload", "created_as_of"]
    assert outbox[columns].equals(replayed_outbox[columns])
