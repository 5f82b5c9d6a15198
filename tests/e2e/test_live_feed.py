"""A live feed through the real product: `storemon up` with its sensors, poll files dropped into
`incoming/` six hours at a time, one hour of each batch held back and delivered two batches later,
a file re-delivered with other statuses, and a new hours snapshot on the way. Once the product is
idle, every stored report partition is the report of the final data as of its as-of
(docs/semantics.md §2.12): the history rows equal `storemon report --as-of`, and a store's
timeline as of a partition's as-of has that partition's numbers.
"""

from __future__ import annotations

import csv
import random
import shutil
import subprocess
import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import httpx
import pandas as pd
import pytest
from support.stack import BIN, ROOT
from support.up import Up, api_client, running_up

from storemon_pipeline.engine.db import database
from storemon_pipeline.engine.history import attach_history, partition_as_of
from storemon_pipeline.engine.report import compute_reports, latest_poll

START = datetime(2023, 1, 20)
HOURS = 36
STORES = 150
IN_FLIGHT = "{ runsOrError(filter: {statuses: [QUEUED, NOT_STARTED, STARTING, STARTED, " \
    "CANCELING]}) { ... on Runs { results { runId } } } }"


def _sample_stores() -> list[str]:
    with open(ROOT / "data" / "timezones.csv", newline="") as handle:
        return [row["store_id"] for row in csv.DictReader(handle)][:STORES]


def _poll_files(folder: Path) -> list[Path]:
    """One file per UTC hour: every store polled once, at a random second, mostly active."""
    rng = random.Random(16)
    folder.mkdir()
    files = []
    for hour in range(HOURS):
        path = folder / f"polls_{hour:02d}.csv"
        rows = [
            f"{store},{'active' if rng.random() < 0.8 else 'inactive'},"
            f"{START + timedelta(hours=hour, seconds=rng.randrange(3600))} UTC\n"
            for store in _sample_stores() if rng.random() < 0.9
        ]
        path.write_text("store_id,status,timestamp_utc\n" + "".join(rows))
        files.append(path)
    return files


def _cli(home: Path, *args: str) -> str:
    done = subprocess.run(
        [str(BIN / "storemon"), *args], env={"STOREMON_HOME": str(home), "PATH": str(BIN)},
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def _runs_in_flight(up: Up) -> int:
    answer = httpx.post(f"http://127.0.0.1:{up.port}/graphql", json={"query": IN_FLIGHT},
                        timeout=30)
    return len(answer.json()["data"]["runsOrError"]["results"])


def _settled(up: Up, files_delivered: int) -> bool:
    """No run in flight, every delivered file loaded, the backlog empty, and every hour holding
    polls stored as of its as-of: nothing left for the product to do."""
    if _runs_in_flight(up):
        return False
    with database(up.home / "storemon.duckdb", read_only=True, wait_seconds=30) as con:
        loaded = con.execute("SELECT count(*) FROM ingest_manifest").fetchone()[0]
        backlog = con.execute("SELECT count(*) FROM history_backlog").fetchone()[0]
        latest = latest_poll(con)
        hours = {r[0] for r in con.execute(
            "SELECT DISTINCT date_trunc('hour', ts) FROM polls").fetchall()}
    if loaded < files_delivered or backlog:
        return False
    stored = _stored_partitions(up.home)
    return stored == {h: partition_as_of(h, latest) for h in hours} and not _runs_in_flight(up)


def _stored_partitions(home: Path) -> dict[datetime, datetime]:
    with database(home / "storemon.duckdb", read_only=True, wait_seconds=30) as con:
        attach_history(con, home / "history.duckdb", read_only=True)
        return dict(con.execute(
            "SELECT partition_hour, as_of FROM history.uptime_report_partitions").fetchall())


def _wait_settled(up: Up, files_delivered: int, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while not _settled(up, files_delivered):
        assert time.monotonic() < deadline, up.text()[-3000:]
        time.sleep(1)


@pytest.fixture(scope="module")
def live_feed(tmp_path_factory) -> Iterator[tuple[Up, httpx.Client]]:
    root = tmp_path_factory.mktemp("live_feed")
    home = root / "home"
    files = _poll_files(root / "feed")
    data = ROOT / "data"
    _cli(home, "ingest", str(data / "menu_hours.csv"), str(data / "timezones.csv"),
         *map(str, files[:12]))
    with running_up(home, root / "up.log") as up, api_client(up) as api:
        incoming = home / "incoming"
        incoming.mkdir(exist_ok=True)
        delivered = 2 + 12  # hours, zones and the first twelve poll files
        held: list[list[Path]] = []
        for first in range(12, HOURS, 6):
            batch = files[first:first + 6]
            held.append(batch[2:3])  # one hour of each batch arrives two batches later
            late = held.pop(0) if len(held) > 2 else []
            for path in [p for p in batch if p not in held[-1]] + late:
                shutil.copy(path, incoming / path.name)
                delivered += 1
            _wait_settled(up, delivered)
        # the held-back hours, a re-delivery that turns polls inactive, and a new snapshot that
        # moves some stores' hours
        again = incoming / "polls_again.csv"
        again.write_text(files[20].read_text().replace(",active,", ",inactive,"))
        hours = (ROOT / "data" / "menu_hours.csv").read_text().splitlines(keepends=True)
        stores = _sample_stores()[:10]
        (incoming / "menu_hours_v2.csv").write_text(hours[0] + "".join(
            line for line in hours[1:] if line.split(",")[0] not in stores
        ) + "".join(f"{s},{d},08:00,20:00\n" for s in stores for d in range(7)))
        for path in [p for batch in held for p in batch]:
            shutil.copy(path, incoming / path.name)
        delivered += 2 + sum(len(batch) for batch in held)
        _wait_settled(up, delivered)
        yield up, api


def _history(home: Path) -> pd.DataFrame:
    with database(home / "storemon.duckdb", read_only=True, wait_seconds=30) as con:
        attach_history(con, home / "history.duckdb", read_only=True)
        return con.execute(
            "SELECT * FROM history.uptime_report ORDER BY partition_hour, store_id").df()


def test_every_stored_partition_is_the_report_of_the_final_data(live_feed):
    up, _ = live_feed
    stored = _stored_partitions(up.home)
    assert len(stored) == HOURS
    history = _history(up.home)
    with database(up.home / "storemon.duckdb", read_only=True, wait_seconds=30) as con:
        compute_reports(con, sorted(set(stored.values())))
        fresh = con.execute("SELECT * EXCLUDE (store_key) FROM report_results").df()
    expected = pd.DataFrame({"partition_hour": list(stored), "as_of": list(stored.values())}) \
        .merge(fresh, on="as_of").sort_values(["partition_hour", "store_id"]).reset_index(drop=True)
    pd.testing.assert_frame_equal(history[expected.columns], expected, check_dtype=False)


@pytest.mark.parametrize("which", [0, 20, -1])  # the oldest, one a late file changed, the newest
def test_history_rows_equal_storemon_report_as_of_the_partition(live_feed, which, tmp_path):
    up, _ = live_feed
    hour, as_of = sorted(_stored_partitions(up.home).items())[which]
    out = tmp_path / "report.csv"
    _cli(up.home, "report", "--as-of", as_of.isoformat(), "--out", str(out))
    history = _history(up.home)
    rows = history[history.partition_hour == pd.Timestamp(hour)].sort_values("store_id")
    report = pd.read_csv(out, dtype=str)
    assert list(report.store_id) == list(rows.store_id)
    for period, unit in (("hour", 60_000_000), ("day", 3_600_000_000), ("week", 3_600_000_000)):
        up_us, business_us = rows[f"uptime_{period}_us"], rows[f"business_{period}_us"]
        for column, us in ((f"uptime_last_{period}", up_us),
                           (f"downtime_last_{period}", business_us - up_us)):
            cents = (us * 100 + unit // 2) // unit  # half up, as docs/semantics.md §2.9 says
            assert report[column].tolist() == [f"{c // 100}.{c % 100:02d}" for c in cents]


def test_a_store_timeline_has_its_partition_numbers(live_feed):
    up, api = live_feed
    history = _history(up.home)
    partition_hour = sorted(history.partition_hour.unique())[20]
    rows = history[history.partition_hour == partition_hour].head(5)
    for row in rows.itertuples():
        answer = api.get(f"/stores/{row.store_id}/timeline",
                         params={"as_of": row.as_of.isoformat()})
        assert answer.status_code == 200, answer.text
        periods = answer.json()["periods"]
        for period in ("hour", "day", "week"):
            found = periods[period]
            assert round(found["uptime_seconds"] * 1e6) == getattr(row, f"uptime_{period}_us")
            assert round(found["business_seconds"] * 1e6) == getattr(row, f"business_{period}_us")
