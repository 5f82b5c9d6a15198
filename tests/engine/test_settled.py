"""Settled local days (engine/settled.py, docs/semantics.md §2.17): whatever order the poll files
arrive in (late, re-delivered with the other status, a new hours, special-hours or zone snapshot
on the way), when each ingest is followed by a settlement, every period computed from the
settled days is exactly the period computed from the polls alone, to the microsecond, with the
same incidents; and the brute-force oracle agrees with both.
"""

from __future__ import annotations

import random
from datetime import date, datetime, timedelta

import pandas as pd
from hypothesis import event, given, settings
from hypothesis import strategies as st
from support.oracle import StoreCase, from_unix, local_instant, to_unix
from test_history_convergence import (
    HOURS_HEADER,
    POLLS_HEADER,
    SPECIAL_HEADER,
    ZONES_HEADER,
    _write,
    ingest_snapshot,
    poll_deliveries,
)
from test_oracle import COMMON, SCALE
from test_sla import MONTH_ZONES, assert_periods_agree

from storemon_pipeline.engine.db import connect, database
from storemon_pipeline.engine.ingest import drop_expired_polls, ingest_paths
from storemon_pipeline.engine.report import latest_poll
from storemon_pipeline.engine.settled import SETTLE_DELAY, settle_days
from storemon_pipeline.engine.sla import (
    Period,
    compute_sla,
    local_days,
    month_period,
    sla_micros,
    utc_period,
    week_period,
)

# the EU spring-forward night (Mar 26), the end of March, Sydney's, Santiago's and Lord Howe's
# fall-back nights (Apr 2) are in the span
START = datetime(2023, 3, 23)
DAYS = 11
ZONES = ["America/New_York", "Europe/Berlin", "Australia/Sydney", "America/Santiago",
         "Australia/Lord_Howe", "Asia/Kolkata", "Pacific/Chatham", "UTC"]
FILE_HOURS = 12


@st.composite
def deliveries(draw):
    """A few stores over 11 days: hours (some none: 24x7; overnight rows), zones east and west
    of UTC, special dates; polls about hourly whose status sticks for hours or days, some with
    fractions of a second, gaps of a day or two; in files of 12 hours arriving in order but a
    few late, some re-delivered with the other status, maybe a new snapshot on the way."""
    n = draw(st.integers(1, 4))
    stores = [f"s{i}" for i in range(n)]
    hours = {}
    for s in stores:
        rows = []
        for day in draw(st.lists(st.integers(0, 6), max_size=6, unique=True)):
            start = draw(st.integers(0, 23))
            end = draw(st.sampled_from([start, (start + draw(st.integers(1, 14))) % 24]))
            rows.append((day, f"{start:02d}:{draw(st.sampled_from(['00', '30']))}",
                         f"{end:02d}:00" if end else "24:00"))
        hours[s] = rows
    zones = {s: draw(st.sampled_from(ZONES)) for s in stores}
    special = [
        f"{s},{(START + timedelta(days=d)).date()},{a},{b},x"
        for s in stores if draw(st.booleans())
        for d, a, b in draw(st.lists(st.tuples(
            st.integers(0, DAYS), st.sampled_from(["", "10:00", "22:00"]),
            st.sampled_from(["", "14:00", "02:00"])), max_size=2))
        if (a == "") == (b == "")
    ]
    rng = random.Random(draw(st.integers(0, 2**32)))
    files: dict[int, list[str]] = {}
    for s in stores:
        every = draw(st.sampled_from([1, 1, 2]))
        flip = draw(st.sampled_from([0.02, 0.1, 0.4]))
        silent = draw(st.sampled_from([None, (3, 5), (7, 8)]))  # days without polls
        active = rng.random() < 0.8
        for hour in range(0, DAYS * 24, every):
            if silent and silent[0] * 24 <= hour < silent[1] * 24:
                continue
            if rng.random() < flip:
                active = not active
            instant = START + timedelta(hours=hour, seconds=rng.randrange(3600),
                                        microseconds=rng.choice([0, 0, 250_000]))
            status = "active" if active else "inactive"
            files.setdefault(hour // FILE_HOURS, []).append(f"{s},{status},{instant} UTC")
    order = sorted(files)
    for _ in range(draw(st.integers(0, 3))):  # some files arrive late
        i = draw(st.integers(0, len(order) - 1))
        order.append(order.pop(i))
    redelivered = draw(st.lists(st.sampled_from(order), max_size=2))
    snapshot_at = draw(st.one_of(st.none(), st.integers(0, len(order) - 1)))
    return stores, hours, zones, special, files, order, redelivered, snapshot_at


def _periods(latest: datetime) -> list[Period]:
    """The periods compared: a local ISO week and calendar months (the one the polls end in,
    cut at the latest poll, and the one they begin in), local days each as of its end and as of
    the latest poll, a UTC day starting at midnight (UTC stores' local day) and one that
    does not."""
    days = local_days(Period(START, START + timedelta(days=DAYS), True))
    return [
        week_period("2023-W13"),
        month_period("2023-04"),
        month_period("2023-03"),
        *days,
        *[Period(d.start, d.end, True, d.name, latest) for d in days],
        utc_period(datetime(2023, 3, 29), datetime(2023, 3, 31)),
        utc_period(datetime(2023, 3, 29, 7, 30), datetime(2023, 4, 1, 7)),
    ]


def assert_settled_is_the_polls(con, periods: list[Period]) -> int:
    """compute_sla with the settled days and without them: the same rows and incidents;
    returns how many store-periods took settled days."""
    compute_sla(con, periods)
    used = con.execute("SELECT count(*) FROM sla_settled_prefix").fetchone()[0]
    settled = sla_micros(con)
    settled_incidents = con.execute("SELECT * FROM sla_incidents ORDER BY ALL").df()
    compute_sla(con, periods, use_settled=False)
    pd.testing.assert_frame_equal(settled, sla_micros(con))
    pd.testing.assert_frame_equal(
        settled_incidents, con.execute("SELECT * FROM sla_incidents ORDER BY ALL").df())
    return used


@settings(max_examples=round(12 * SCALE), **COMMON)
@given(case=deliveries())
def test_settled_days_give_the_periods_of_the_polls(case, tmp_path_factory):
    stores, hours, zones, special, files, order, redelivered, snapshot_at = case
    folder = tmp_path_factory.mktemp("settled")
    con = connect(folder / "storemon.duckdb")
    try:
        hours_rows = ingest_snapshot(
            con, folder, hours, zones, [_write(folder / "special.csv", SPECIAL_HEADER, special)]
        )
        steps = poll_deliveries(files, order, redelivered)
        for k, (name, rows) in enumerate(steps):
            if k == snapshot_at:  # one store's hours, another's zone, a closed day
                ingest_paths(con, [
                    _write(folder / "hours2.csv", HOURS_HEADER, hours_rows[1:] + [
                        f"{stores[0]},{d},05:00,13:30" for d in range(3)]),
                    _write(folder / "zones2.csv", ZONES_HEADER,
                           [f"{s},{'Pacific/Auckland' if s == stores[-1] else z}"
                            for s, z in zones.items()]),
                    _write(folder / "special2.csv", SPECIAL_HEADER,
                           [*special, f"{stores[0]},2023-03-28,,,closed"]),
                ])
                settle_days(con)
            ingest_paths(con, [_write(folder / name, POLLS_HEADER, rows)])
            settlement = settle_days(con)
            if settlement.days:
                event("a settlement settled days")
        latest = latest_poll(con)
        if assert_settled_is_the_polls(con, _periods(latest)):
            event("periods read settled days")
        # what is settled is every day that can be, and only those
        settled = con.execute(
            "SELECT max(day_end), min(determined_by >= day_end), max(determined_by) "
            "FROM sla_days").fetchone()
        if settled[0] is not None:
            assert settled[0] <= latest - SETTLE_DELAY and settled[1]
            assert settled[2] <= latest
    finally:
        con.close()


# --- the sample: a month from settled days, the oracle, the invalidations --------------------


def test_the_sample_month_is_read_from_settled_days(sample_state, tmp_path):
    """On the sample (1,500 stores, a week of January): the settlement settles the days that
    have ended, the month and its ISO weeks read them (only the last days from the polls) and
    give exactly the rows and incidents of the polls alone; a second settlement settles
    nothing; a late poll forgets its store's days from the one it determines, and settling
    again gives the same periods as the polls."""
    path = tmp_path / "storemon.duckdb"
    path.write_bytes((sample_state / "storemon.duckdb").read_bytes())
    with database(path) as con:
        first = settle_days(con)
        assert first.stores == 1500 and first.days >= 1500 * 20
        # from the first of the month (the first poll owns the time before it) to the 24th (the
        # 25th ends after the delay)
        assert (first.first_date, first.last_date) == (date(2023, 1, 1), date(2023, 1, 24))
        assert settle_days(con).days == 0
        periods = [month_period("2023-01"), week_period("2023-W03")]
        compute_sla(con, periods)
        recent = con.execute(
            "SELECT count(*) FILTER (WHERE counted_from >= DATE '2023-01-24') / count(*) "
            "FROM sla_store_periods WHERE period_id = 0").fetchone()[0]
        # the month's polls are read from the last settled day's end on (but for the few
        # stores not polled in their hours since a day ended: that day waits for its poll)
        assert recent > 0.95
        assert assert_settled_is_the_polls(con, periods) > 2000

        store_key, store_id, day = con.execute(
            "SELECT store_key, store_id, local_date FROM sla_days JOIN stores USING (store_key) "
            "WHERE local_date = DATE '2023-01-21' ORDER BY store_id LIMIT 1").fetchone()
        late = _write(tmp_path / "late.csv", POLLS_HEADER,
                      [f"{store_id},inactive,2023-01-21 18:00:00.5 UTC"])
        assert ingest_paths(con, [late])[0].rows_loaded == 1
        kept = con.execute(
            "SELECT store_key = $key AS is_late_store, max(local_date) FROM sla_days "
            "GROUP BY ALL ORDER BY ALL", {"key": store_key}).fetchall()
        # the late store keeps the days its polls determined before the late poll
        assert kept[0] == (False, date(2023, 1, 24)) and kept[1][1] < date(2023, 1, 21)
        assert con.execute("SELECT next_date FROM sla_days_span WHERE store_key = ?",
                           [store_key]).fetchone()[0] == kept[1][1] + timedelta(days=1)
        again = settle_days(con)
        assert again.stores == 1 and again.days >= 3
        assert_settled_is_the_polls(con, periods)


def test_a_snapshot_forgets_only_the_days_of_the_stores_it_changes(sample_state, tmp_path):
    path = tmp_path / "storemon.duckdb"
    path.write_bytes((sample_state / "storemon.duckdb").read_bytes())
    with database(path) as con:
        settle_days(con)
        (store_id,) = con.execute(
            "SELECT min(store_id) FROM timezones SEMI JOIN stores USING (store_id)").fetchone()
        count = (
            "SELECT count(*), count(*) FILTER (WHERE store_id = ?) FROM sla_days "
            "JOIN stores USING (store_key)"
        )
        before, before_store = con.execute(count, [store_id]).fetchone()
        assert before_store >= 7
        zones = con.execute("SELECT store_id, timezone FROM timezones").fetchall()
        rows = [f"{s},{'Asia/Tokyo' if s == store_id else z}" for s, z in zones]
        ingest_paths(con, [_write(tmp_path / "zones.csv", ZONES_HEADER, rows)])
        assert con.execute(count, [store_id]).fetchone() == (before - before_store, 0)
        assert settle_days(con).stores == 1
        assert_settled_is_the_polls(con, [month_period("2023-01")])


def test_retention_forgets_the_days_it_makes_untrue(sample_state, tmp_path):
    path = tmp_path / "storemon.duckdb"
    path.write_bytes((sample_state / "storemon.duckdb").read_bytes())
    with database(path) as con:
        settle_days(con)
        latest = latest_poll(con)
        assert drop_expired_polls(con, timedelta(days=4)) > 0
        cutoff = latest - timedelta(days=4)
        left = con.execute(
            "SELECT min(day_start), min(depends_from), count(*) FROM sla_days").fetchone()
        assert left[0] >= cutoff and (left[1] is None or left[1] >= cutoff) and left[2] > 0
        spans = con.execute(
            "SELECT count(*) FROM sla_days_span JOIN (SELECT store_key, min(local_date) AS d "
            "FROM sla_days GROUP BY ALL) USING (store_key) WHERE first_date <> d").fetchone()
        assert spans[0] == 0
        settle_days(con)
        assert_settled_is_the_polls(con, [week_period("2023-W04")])


@settings(max_examples=round(4 * SCALE), **COMMON)
@given(zone=st.sampled_from(MONTH_ZONES), seed=st.integers(0, 2**32))
def test_a_month_of_settled_days_agrees_with_the_oracle(zone, seed, tmp_path_factory):
    """A whole month of hourly polls with incidents across midnights and a closed Sunday, settled
    as it arrives day by day: the month, cut at the latest poll and closed, against the oracle
    second by second."""
    tmp_path = tmp_path_factory.mktemp("settled-month")
    rng = random.Random(seed)
    month = month_period("2023-10")
    start = local_instant(zone, month.start)
    hours = [(d, "08:00", "20:00") for d in range(6)] + [(5, "22:00", "02:00")]
    polls, active = [], True
    for hour in range(-30, 33 * 24):
        if rng.random() < 0.08:
            active = not active
        polls.append((from_unix(start + hour * 3600 + rng.randrange(3600)), active))
    store = StoreCase("m", hours, zone, polls)
    con = connect(tmp_path / "storemon.duckdb")
    try:
        ingest_paths(con, [
            _write(tmp_path / "hours.csv", HOURS_HEADER, [f"m,{d},{a},{b}" for d, a, b in hours]),
            _write(tmp_path / "zones.csv", ZONES_HEADER, [f"m,{zone}"]),
        ])
        for day in range(0, len(polls), 24):
            rows = [f"m,{'active' if a else 'inactive'},{p:%Y-%m-%d %H:%M:%S} UTC"
                    for p, a in polls[day:day + 24]]
            ingest_paths(con, [_write(tmp_path / f"polls{day}.csv", POLLS_HEADER, rows)])
            settle_days(con)
            if day == 20 * 24:  # the month so far, cut at the latest poll
                latest = to_unix(latest_poll(con))
                compute_sla(con, [month])
                assert_periods_agree(con, [store], [month], latest)
        latest = to_unix(latest_poll(con))
        compute_sla(con, [month])
        used = con.execute("SELECT last_date FROM sla_settled_prefix").fetchone()
        assert used is not None and used[0] >= date(2023, 10, 30)
        assert_periods_agree(con, [store], [month], latest)
        assert sla_micros(con).iloc[0]["incidents"] > 3
    finally:
        con.close()
