"""The seven worked examples of docs/semantics.md §3, verbatim: on the engine's CSV and on the
oracle."""

from __future__ import annotations

import csv
from datetime import UTC, datetime

import pytest
from support.oracle import StoreCase, oracle_report

HEADER = [
    "store_id",
    "uptime_last_hour",
    "uptime_last_day",
    "uptime_last_week",
    "downtime_last_hour",
    "downtime_last_day",
    "downtime_last_week",
]


def utc(*args) -> datetime:
    return datetime(*args, tzinfo=UTC)


# (name, stores, T, {store_id: {column: expected value as docs/semantics.md §3 states it}})
EXAMPLES = [
    pytest.param(
        # Store A, America/Chicago (UTC-6 in January), Monday 09:00-12:00; polls Monday
        # 2023-01-23 10:14 local (active) and 11:15 local (inactive); T = 12:30 local.
        [
            StoreCase(
                "A",
                hours=[(0, "09:00", "12:00")],
                zone="America/Chicago",
                polls=[(utc(2023, 1, 23, 16, 14), True), (utc(2023, 1, 23, 17, 15), False)],
            )
        ],
        utc(2023, 1, 23, 18, 30),
        {
            "A": {
                "uptime_last_week": 1.74,
                "downtime_last_week": 1.26,
                "uptime_last_day": 1.74,
                "downtime_last_day": 1.26,
                "uptime_last_hour": 0.0,
                "downtime_last_hour": 30.0,
            }
        },
        id="1-chicago-midpoint",
    ),
    pytest.param(
        # Store N, America/New_York, Sunday 00:30-01:30; one poll 2023-11-05 04:40 UTC
        # (active); T = 2023-11-05 10:00 UTC; fall back: business time [04:30, 05:30) UTC.
        [
            StoreCase(
                "N",
                hours=[(6, "00:30", "01:30")],
                zone="America/New_York",
                polls=[(utc(2023, 11, 5, 4, 40), True)],
            )
        ],
        utc(2023, 11, 5, 10, 0),
        {"N": {"uptime_last_day": 1.00, "uptime_last_week": 1.00}},
        id="2-new-york-fall-back",
    ),
    pytest.param(
        # Store M, America/New_York, Sunday 01:30-02:30; one poll 2023-03-12 06:45 UTC
        # (inactive); T = 2023-03-12 12:00 UTC; spring forward: [06:30, 07:00) UTC.
        [
            StoreCase(
                "M",
                hours=[(6, "01:30", "02:30")],
                zone="America/New_York",
                polls=[(utc(2023, 3, 12, 6, 45), False)],
            )
        ],
        utc(2023, 3, 12, 12, 0),
        {"M": {"downtime_last_day": 0.50}},
        id="3-new-york-spring-forward",
    ),
    pytest.param(
        # Store G, same zone, Sunday 02:15-02:45 and 23:00-23:30; one poll 2023-03-12
        # 06:45 UTC (active, outside business time: fallback); T as in 3.
        [
            StoreCase(
                "G",
                hours=[(6, "02:15", "02:45"), (6, "23:00", "23:30")],
                zone="America/New_York",
                polls=[(utc(2023, 3, 12, 6, 45), True)],
            )
        ],
        utc(2023, 3, 12, 12, 0),
        {"G": {"uptime_last_day": 0.0, "uptime_last_week": 0.50}},
        id="4-new-york-empty-window-fallback",
    ),
    pytest.param(
        # Store C, America/Chicago, every day 09:00-17:00; special hours 2023-12-24
        # 10:00-14:00 and 2023-12-25 closed; polls 2023-12-22 10:00 local (inactive) and
        # 2023-12-24 11:00 local (active); T = 2023-12-26 00:00 UTC (Dec 25 18:00 local).
        [
            StoreCase(
                "C",
                hours=[(day, "09:00", "17:00") for day in range(7)],
                zone="America/Chicago",
                polls=[(utc(2023, 12, 22, 16), False), (utc(2023, 12, 24, 17), True)],
                special=[("2023-12-24", "10:00", "14:00"), ("2023-12-25", "", "")],
            )
        ],
        utc(2023, 12, 26),
        {
            "C": {
                "uptime_last_week": 10.50,
                "downtime_last_week": 33.50,
                "uptime_last_day": 0.0,
                "downtime_last_day": 0.0,
                "uptime_last_hour": 0.0,
                "downtime_last_hour": 0.0,
            }
        },
        id="5-chicago-christmas",
    ),
    pytest.param(
        # Store S, America/New_York, Saturday 18:00-23:00; special hours 2023-03-11
        # 20:00-04:00, overnight through the spring-forward night; one poll 2023-03-12
        # 02:00 UTC (active); T = 2023-03-12 12:00 UTC: business time [01:00, 08:00) UTC.
        [
            StoreCase(
                "S",
                hours=[(5, "18:00", "23:00")],
                zone="America/New_York",
                polls=[(utc(2023, 3, 12, 2), True)],
                special=[("2023-03-11", "20:00", "04:00")],
            )
        ],
        utc(2023, 3, 12, 12),
        {"S": {"uptime_last_day": 7.00, "uptime_last_week": 7.00, "downtime_last_week": 0.0}},
        id="6-new-york-overnight-special-spring-forward",
    ),
    pytest.param(
        # Store Q, Australia/Sydney, no weekly hours (24x7); special hours 2023-04-02 closed,
        # the fall-back night (25 hours: [2023-04-01 13:00, 2023-04-02 14:00) UTC); one poll
        # 2023-04-02 20:00 UTC (inactive); T = 2023-04-03 00:00 UTC.
        [
            StoreCase(
                "Q",
                zone="Australia/Sydney",
                polls=[(utc(2023, 4, 2, 20), False)],
                special=[("2023-04-02", "", "")],
            )
        ],
        utc(2023, 4, 3),
        {
            "Q": {
                "downtime_last_hour": 60.0,
                "downtime_last_day": 10.00,
                "downtime_last_week": 143.00,
                "uptime_last_week": 0.0,
            }
        },
        id="7-sydney-closed-fall-back-date",
    ),
]


def read_report_csv(path) -> tuple[list[str], list[dict[str, str]]]:
    with open(path, newline="", encoding="utf-8") as handle:
        rows = list(csv.reader(handle))
    header, body = rows[0], rows[1:]
    return header, [dict(zip(header, row, strict=True)) for row in body]


@pytest.mark.parametrize(("stores", "as_of", "expected"), EXAMPLES)
def test_worked_example_engine_csv(run_engine, tmp_path, stores, as_of, expected):
    out = tmp_path / "report.csv"
    run_engine(stores, as_of, tmp_path / "feeds", csv_path=out)
    header, rows = read_report_csv(out)
    assert header == HEADER
    assert [row["store_id"] for row in rows] == sorted(expected)
    by_store = {row["store_id"]: row for row in rows}
    for store_id, values in expected.items():
        for column, value in values.items():
            text = by_store[store_id][column]
            assert float(text) == pytest.approx(value, abs=1e-9), (store_id, column, text)
            # rounded to 2 decimals
            assert round(float(text), 2) == float(text)


@pytest.mark.parametrize(("stores", "as_of", "expected"), EXAMPLES)
def test_worked_example_oracle(stores, as_of, expected):
    frame = oracle_report(stores, as_of)
    assert list(frame.columns) == HEADER
    assert list(frame["store_id"]) == sorted(expected)
    by_store = frame.set_index("store_id")
    for store_id, values in expected.items():
        for column, value in values.items():
            got = by_store.loc[store_id, column]
            assert round(got, 2) == pytest.approx(value, abs=1e-9), (store_id, column, got)


def test_worked_example_1_exact_seconds():
    """Example 1 to the second: uptime 09:00-10:44:30, downtime 10:44:30-12:00 local."""
    [store], as_of, _ = EXAMPLES[0].values
    frame = oracle_report([store], as_of).set_index("store_id")
    assert frame.loc["A", "uptime_last_week"] * 3600 == pytest.approx(1 * 3600 + 44 * 60 + 30)
    assert frame.loc["A", "downtime_last_week"] * 3600 == pytest.approx(1 * 3600 + 15 * 60 + 30)


def test_worked_example_2_and_3_business_time():
    """The UTC business windows §3 spells out for examples 2, 3 and 4."""
    from support.oracle import business_intervals, to_unix

    def windows(hours, lo, hi):
        ivs = business_intervals(hours, "America/New_York", to_unix(lo), to_unix(hi))
        return sorted(
            (int(a), int(b)) for a, b in ivs if a < to_unix(hi) and b > to_unix(lo)
        )

    day = (utc(2023, 11, 5), utc(2023, 11, 6))
    assert windows([(6, "00:30", "01:30")], *day) == [
        (to_unix(utc(2023, 11, 5, 4, 30)), to_unix(utc(2023, 11, 5, 5, 30)))
    ]
    day = (utc(2023, 3, 12), utc(2023, 3, 13))
    assert windows([(6, "01:30", "02:30")], *day) == [
        (to_unix(utc(2023, 3, 12, 6, 30)), to_unix(utc(2023, 3, 12, 7, 0)))
    ]
    # 02:15-02:45 on the spring-forward night is empty: both ends map to 03:00 EDT.
    assert windows([(6, "02:15", "02:45")], *day) in (
        [],
        [(to_unix(utc(2023, 3, 12, 7)), to_unix(utc(2023, 3, 12, 7)))],
    )


def test_worked_examples_5_and_6_without_their_special_dates():
    """What §3 says the special dates change: without them, C's day has 8 h of business time
    and its week 56 h; S's night has 5 h."""
    christmas, overnight = EXAMPLES[4].values, EXAMPLES[5].values
    [store], as_of, _ = christmas
    plain = oracle_report([StoreCase("C", store.hours, store.zone, store.polls)], as_of)
    row = plain.set_index("store_id").loc["C"]
    assert row["uptime_last_day"] + row["downtime_last_day"] == pytest.approx(8.0)
    assert row["uptime_last_week"] + row["downtime_last_week"] == pytest.approx(56.0)
    [store], as_of, _ = overnight
    plain = oracle_report([StoreCase("S", store.hours, store.zone, store.polls)], as_of)
    assert plain.set_index("store_id").loc["S", "uptime_last_day"] == pytest.approx(5.0)
