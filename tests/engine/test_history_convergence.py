"""The history converges (docs/semantics.md §2.12): whatever order the poll files arrive in, late,
re-delivered with another status, or with a new hours, special-hours or time-zone snapshot in
between, once each ingest is followed by the report run the sensor asks for, every stored
partition holds the report of the final data as of its as-of, for every store, and nothing else.

The run is the engine's ``update_history`` with the partitions the ingest names, as the sensor
launches it (``only_stale``: new partitions and moved as-ofs whole, the rest by the backlog).
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from datetime import datetime, timedelta
from pathlib import Path

import pandas as pd
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from storemon_pipeline.engine.db import connect
from storemon_pipeline.engine.history import (
    attach_history,
    backlog_stores,
    partition_as_of,
    partition_hour_of,
    partitions_changed_by,
    update_history,
)
from storemon_pipeline.engine.ingest import ingest_paths
from storemon_pipeline.engine.report import compute_reports, latest_poll

START = datetime(2023, 3, 10)  # the US spring-forward night falls in the span
ZONES = ["America/New_York", "Europe/Berlin", "Australia/Sydney", "Asia/Kolkata", "UTC"]
HOURS_HEADER = "store_id,dayOfWeek,start_time_local,end_time_local\n"
ZONES_HEADER = "store_id,timezone_str\n"
POLLS_HEADER = "store_id,status,timestamp_utc\n"
SPECIAL_HEADER = "store_id,date,start_time_local,end_time_local,reason\n"


def special_snapshot(folder: Path, stores: list[str]) -> Path:
    """A special-hours snapshot that changes two stores' days in the span: one closed on the
    US spring-forward eve, one open only 01:00-04:00 the night after."""
    return _write(folder / "special2.csv", SPECIAL_HEADER, [
        f"{stores[-1]},2023-03-11,,,holiday", f"{stores[0]},2023-03-12,01:00,04:00,night"])


def sensor_run(con, history: Path, previous_latest: datetime | None, results) -> None:
    """What the ingest's metadata and the sensor make of an ingest: a report run over the hours
    of its new polls and the previous latest hour (or the newest hour, when only the backlog
    has work), computing whole only what is new or moved."""
    latest = latest_poll(con)
    changed = partitions_changed_by(
        sorted({h for r in results for h in r.poll_hours}), previous_latest, latest
    )
    if backlog_stores(con) and not changed and latest is not None:
        changed = [partition_hour_of(latest)]
    if changed:
        update_history(
            con, history, {h: partition_as_of(h, latest) for h in changed}, only_stale=True
        )


def stored_history(con, history: Path) -> pd.DataFrame:
    attach_history(con, history, read_only=True)
    try:
        return con.execute(
            "SELECT * FROM history.uptime_report ORDER BY partition_hour, store_id"
        ).df()
    finally:
        con.execute("DETACH history")


def assert_history_is_the_data(con, history: Path, poll_hours: set[datetime]) -> None:
    """Every partition stored, as of min(end of hour, latest poll), with exactly the rows of a
    report of all the data computed now."""
    latest = latest_poll(con)
    stored = stored_history(con, history)
    as_of_by_hour = {h: partition_as_of(h, latest) for h in sorted(poll_hours)}
    assert {ts.to_pydatetime() for ts in stored["partition_hour"].unique()} == set(as_of_by_hour)
    compute_reports(con, list(as_of_by_hour.values()))
    fresh = con.execute("SELECT * EXCLUDE (store_key) FROM report_results").df()
    partitions = pd.DataFrame({  # two partitions share an as-of when the latest poll is on the hour
        "partition_hour": list(as_of_by_hour), "as_of": list(as_of_by_hour.values())})
    expected = partitions.merge(fresh, on="as_of").sort_values(["partition_hour", "store_id"])
    got = stored.sort_values(["partition_hour", "store_id"])
    pd.testing.assert_frame_equal(
        got[expected.columns].reset_index(drop=True), expected.reset_index(drop=True),
        check_dtype=False,
    )
    attach_history(con, history, read_only=True)
    try:
        totals = con.execute(
            """
            SELECT count(*) FILTER (
                WHERE p.stores <> r.stores OR p.business_week_us <> r.business_week_us
                   OR p.uptime_week_us <> r.uptime_week_us OR p.as_of <> r.as_of)
            FROM history.uptime_report_partitions AS p
            JOIN (SELECT partition_hour, any_value(as_of) AS as_of, count(*) AS stores,
                         sum(business_week_us) AS business_week_us,
                         sum(uptime_week_us) AS uptime_week_us
                  FROM history.uptime_report GROUP BY ALL) AS r USING (partition_hour)
            """
        ).fetchone()[0]
    finally:
        con.execute("DETACH history")
    assert totals == 0, "a partition's totals are not the sum of its rows"
    assert backlog_stores(con) == 0


@st.composite
def feeds(draw):
    """A few stores over two days: hours (some none: 24x7), zones, polls roughly hourly with
    gaps; the poll files (one per four UTC hours) and the order they arrive in, some late; polls
    re-delivered with the other status; maybe a second hours and zone snapshot on the way."""
    n = draw(st.integers(1, 4))
    stores = [f"s{i:02d}" for i in range(n)]
    hours = {
        s: [(d, f"{draw(st.integers(0, 22)):02d}:00", f"{draw(st.integers(1, 24)):02d}:00")
            for d in draw(st.lists(st.integers(0, 6), max_size=4, unique=True))]
        for s in stores
    }
    zones = {s: draw(st.sampled_from(ZONES)) for s in stores}
    rng = random.Random(draw(st.integers(0, 2**32)))
    files: dict[int, list[str]] = {}
    for s in stores:
        every = draw(st.sampled_from([1, 1, 2, 7]))
        for hour in range(0, 48, every):
            if rng.random() < 0.15:
                continue
            instant = START + timedelta(hours=hour, seconds=rng.randrange(3600))
            status = "active" if rng.random() < 0.7 else "inactive"
            files.setdefault(hour // 4, []).append(f"{s},{status},{instant} UTC")
    order = sorted(files)
    for _ in range(draw(st.integers(0, 4))):  # some files arrive late
        i = draw(st.integers(0, max(0, len(order) - 1)))
        if order:
            order.append(order.pop(i))
    redelivered = draw(st.lists(st.sampled_from(order), max_size=2)) if order else []
    new_snapshot = draw(st.booleans()) and order
    snapshot_at = draw(st.integers(0, max(0, len(order) - 1)))
    return stores, hours, zones, files, order, redelivered, new_snapshot, snapshot_at


def _write(path: Path, header: str, rows: list[str]) -> Path:
    path.write_text(header + "".join(row + "\n" for row in rows))
    return path


def ingest_snapshot(
    con, folder: Path, hours: dict, zones: dict, extra: Sequence[Path] = ()
) -> list[str]:
    """Ingest a case's hours and zones (and any other feed files); returns the hours' rows."""
    hours_rows = [f"{s},{d},{a},{b}" for s, rows in hours.items() for d, a, b in rows]
    ingest_paths(con, [
        _write(folder / "hours.csv", HOURS_HEADER, hours_rows),
        _write(folder / "zones.csv", ZONES_HEADER, [f"{s},{z}" for s, z in zones.items()]),
        *extra,
    ])
    return hours_rows


def poll_deliveries(
    files: dict, order: Sequence, redelivered: Sequence
) -> list[tuple[str, list[str]]]:
    """A case's poll files in delivery order, then the redelivered ones with every status
    inactive (inactive wins)."""
    deliveries = [(f"polls_{h}.csv", files[h]) for h in order]
    deliveries += [
        (f"again_{h}.csv", [r.replace(",active,", ",inactive,") for r in files[h]])
        for h in redelivered
    ]
    return deliveries


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=feeds())
def test_history_converges_whatever_the_order(case, tmp_path_factory):
    stores, hours, zones, files, order, redelivered, new_snapshot, snapshot_at = case
    folder = tmp_path_factory.mktemp("converge")
    history = folder / "history.duckdb"
    con = connect(folder / "storemon.duckdb")
    try:
        hours_rows = ingest_snapshot(con, folder, hours, zones)
        deliveries = poll_deliveries(files, order, redelivered)
        poll_hours: set[datetime] = set()
        for k, (name, rows) in enumerate(deliveries):
            if new_snapshot and k == snapshot_at:
                previous = latest_poll(con)
                results = ingest_paths(con, [
                    _write(folder / "hours2.csv", HOURS_HEADER, hours_rows[1:] + [
                        f"{stores[0]},{d},05:00,13:30" for d in range(3)]),
                    _write(folder / "zones2.csv", ZONES_HEADER,
                           [f"{s},Pacific/Auckland" for s in stores[:1]]),
                    special_snapshot(folder, stores),
                ])
                sensor_run(con, history, previous, results)
            previous = latest_poll(con)
            results = ingest_paths(con, [_write(folder / name, POLLS_HEADER, rows)])
            poll_hours |= {h for r in results for h in r.poll_hours}
            sensor_run(con, history, previous, results)
        if poll_hours:
            assert_history_is_the_data(con, history, poll_hours)
    finally:
        con.close()


def test_a_late_poll_recomputes_only_its_store(tmp_path):
    """A late poll of one store changes its stored partitions from its instant on, and no other
    store's rows are written again."""
    history = tmp_path / "history.duckdb"
    con = connect(tmp_path / "storemon.duckdb")
    try:
        rows = [f"{s},active,{START + timedelta(hours=h)} UTC" for s in ("a", "b")
                for h in range(0, 30) if h != 10]
        results = ingest_paths(con, [_write(tmp_path / "polls.csv", POLLS_HEADER, rows)])
        sensor_run(con, history, None, results)
        before = stored_history(con, history)
        late = _write(tmp_path / "late.csv", POLLS_HEADER,
                      [f"a,inactive,{START + timedelta(hours=10)} UTC"])
        previous = latest_poll(con)
        sensor_run(con, history, previous, ingest_paths(con, [late]))
        after = stored_history(con, history)
        kept = after[after.partition_hour.isin(before.partition_hour)]  # hour 10 is new
        assert kept[kept.store_id == "b"].reset_index(drop=True).equals(
            before[before.store_id == "b"].reset_index(drop=True))
        changed = after.merge(before, on=["partition_hour", "store_id"], suffixes=("", "_was"))
        changed = changed[changed.uptime_week_us != changed.uptime_week_us_was]
        assert set(changed.store_id) == {"a"}
        # a poll at T counts as of T: the first partition it changes ends at its instant
        assert changed.as_of.min() == pd.Timestamp(START + timedelta(hours=10))
        assert_history_is_the_data(con, history, {START + timedelta(hours=h) for h in range(30)})
    finally:
        con.close()


def test_a_new_special_snapshot_recomputes_only_the_stores_it_changes(tmp_path):
    """A special date added for one store changes its stored rows and no other store's; the
    same dates with other free-text reasons change nothing (docs/semantics.md §2.12)."""
    history = tmp_path / "history.duckdb"
    con = connect(tmp_path / "storemon.duckdb")
    try:
        rows = [f"{s},active,{START + timedelta(hours=h)} UTC" for s in ("a", "b")
                for h in range(0, 40)]
        results = ingest_paths(con, [_write(tmp_path / "polls.csv", POLLS_HEADER, rows)])
        sensor_run(con, history, None, results)
        before = stored_history(con, history)
        closed = _write(tmp_path / "special.csv", SPECIAL_HEADER, ["a,2023-03-10,,,holiday"])
        previous = latest_poll(con)
        sensor_run(con, history, previous, ingest_paths(con, [closed]))
        after = stored_history(con, history)
        assert after[after.store_id == "b"].reset_index(drop=True).equals(
            before[before.store_id == "b"].reset_index(drop=True))
        changed = after.merge(before, on=["partition_hour", "store_id"], suffixes=("", "_was"))
        changed = changed[changed.business_week_us != changed.business_week_us_was]
        assert set(changed.store_id) == {"a"}
        assert_history_is_the_data(con, history, {START + timedelta(hours=h) for h in range(40)})
        renamed = _write(tmp_path / "special_renamed.csv", SPECIAL_HEADER,
                         ["a,2023-03-10,,,public holiday"])
        assert ingest_paths(con, [renamed])[0].status == "loaded"
        assert backlog_stores(con) == 0
        assert con.execute("SELECT reason FROM special_hours").fetchall() == [("public holiday",)]
    finally:
        con.close()


@settings(max_examples=3, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=feeds())
def test_the_sharded_history_converges_to_the_one_file_history(case, tmp_path_factory):
    """The same deliveries into 3 shards, each followed by the sharded report run over the same
    partitions: the history rows are those of one file, and every shard's backlog is empty."""
    from storemon_pipeline.engine.sharded import (
        assemble_report,
        ingest_one_after_another,
        report_plan,
        report_shard,
    )
    from storemon_pipeline.engine.shards import union_connection
    from storemon_pipeline.settings import Settings

    stores, hours, zones, files, order, redelivered, new_snapshot, snapshot_at = case
    folder = tmp_path_factory.mktemp("converge-shards")
    one = connect(folder / "one.duckdb")
    state = Settings(home=folder / "sharded", shards=3, lock_wait_seconds=5).sharded
    try:
        hours_rows = [f"{s},{d},{a},{b}" for s, rows in hours.items() for d, a, b in rows]
        deliveries = [
            [_write(folder / "hours.csv", HOURS_HEADER, hours_rows),
             _write(folder / "zones.csv", ZONES_HEADER, [f"{s},{z}" for s, z in zones.items()])],
            *([_write(folder / f"polls_{h}.csv", POLLS_HEADER, files[h])] for h in order),
            *([_write(folder / f"again_{h}.csv", POLLS_HEADER,
                      [r.replace(",active,", ",inactive,") for r in files[h]])]
              for h in redelivered),
        ]
        if new_snapshot:
            deliveries.insert(1 + snapshot_at, [_write(
                folder / "hours2.csv", HOURS_HEADER,
                hours_rows[1:] + [f"{stores[0]},{d},05:00,13:30" for d in range(3)]),
                special_snapshot(folder, stores)])
        for k, paths in enumerate(deliveries):
            previous = latest_poll(one)
            results = ingest_paths(one, paths)
            sensor_run(one, folder / "one_history.duckdb", previous, results)
            ingest_one_after_another(state, paths)
            changed = partitions_changed_by(
                sorted({h for r in results for h in r.poll_hours}), previous, latest_poll(one))
            if backlog_stores(one) == 0 and not changed:
                continue  # the one-file run had nothing to do either
            if not changed:
                changed = [partition_hour_of(latest_poll(one))]
            plan = report_plan(state, changed)
            parts = [f for i in range(3) for f in report_shard(state, i, f"run{k}", plan)]
            assemble_report(state, f"run{k}", parts, plan, folder / f"report{k}.csv")
        with union_connection(state.shard_paths) as con:
            assert con.execute("SELECT count(*) FROM history_backlog").fetchone()[0] == 0
            sharded = stored_history(con, state.history_path)
        expected = stored_history(one, folder / "one_history.duckdb")
        pd.testing.assert_frame_equal(
            sharded.drop(columns=[]).reset_index(drop=True), expected.reset_index(drop=True))
    finally:
        one.close()
