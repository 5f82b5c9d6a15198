"""``storemon bench``: the speed and memory bars of the README, measured on generated data.

Each phase runs in its own child process so that its peak memory is its own (read from the
kernel's rusage of that child) and so that nothing cached by one phase helps the next. A floor
phase, plain DuckDB reading the same files and making one window pass, shows how far the
engine is from the cheapest thing that could possibly work on this machine.

Two kinds of run:

- ``storemon bench [--scale K]``: K x the real scale over 8 days: ingest, the business windows,
  one report (as the CLI makes it), one store's timeline (as the CLI and as the API read it), at
  1x and below the API under load (a real uvicorn on loopback: timelines to 16 clients, a
  report's CSV), the week of 168 hourly reports in one pass (what a backfill
  of a week's partitions computes), the history brought up to date after a late file of the
  whole fleet and of 100 stores (a day after their hour), the report again after two valid
  polls ten months older than the rest arrived (a stray row), and the report with the
  generated special hours (10 % of the stores) against the same report without them.
- ``storemon bench --history-days D``: the same stores polled for D days from the 1st of a
  month (daily files, as a live feed accumulates them): ingest, the settlement of the local
  days it brings (once for the whole history), a first report, the ingest of one more hour
  and the settlement after it, the report after it (what a live feed computes every hour),
  and the SLA of that first calendar month for every store (what `storemon sla --month`
  computes, from the settled days and the last days' polls; with D >= 31 the month holds a
  whole month of polls). Compared with the last 8-day run at the same scale: history must
  not make a report dearer.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

BASE_STORES = 14_000
DAYS = 8
SEED = 0
START = "2023-01-18"
HISTORY_START = "2023-01-01"  # a history begins with a calendar month, for the SLA phase
# Bump when the generator's output changes, so cached data sets are made again.
DATASET_VERSION = 3  # 3: special_hours.csv beside the other feeds (which are unchanged)
# Bars at 1x (README, Performance); at scale K the time bars are K times these (never less).
INGEST_BAR_S = 5.0
REPORT_BAR_S = 2.0
MEMORY_BAR_MB = 4096.0
# Against the floor, measured in the same run (a machine's speed varies; the ratio does not).
INGEST_FLOOR_BAR_X = 3.0
MEMORY_BAR_30X_MB = 3072.0  # from 30x on, every phase under 3 GB


def report_floor_bar_x(scale: float) -> float:
    """The report against the floor: 2x at 1x (fixed costs weigh there), 1x at 30x, 1.5x at
    100x (where the floor's own table no longer fits its memory as well)."""
    if scale >= 100:
        return 1.5
    return 1.0 if scale >= 30 else 2.0


WEEK_BAR_X = 10.0  # 168 hourly reports in one pass, against one report
STRAY_BAR_X = 1.5  # a report after stray old polls arrived, against the same without them
LATE_FLEET_BAR_X = 3.0  # the history recomputed after the fleet's file of a day ago, / a report
LATE_STORES_BAR_S = 1.0  # the same after a late file of 100 stores
SPECIAL_BAR_X = 1.1  # a report with special hours for 10 % of the stores, / the same without
SPECIAL_REPETITIONS = 7  # reports of each kind, alternating; the medians are compared
SMALL_SPECIAL_REPETITIONS = 2  # below 1x (the tests' tiny scale): the phase runs, quickly
HISTORY_BAR_X = 1.3  # a report with D days of history, against 8 days (time and memory)
HOUR_INGEST_BAR_S = 1.0  # one more hour of polls into D days of history (at 1x)
LIVE_HOUR_INGEST_100X_S = 5.0  # the same at 100x (and K/100 times it at scale K >= 20)
LIVE_REPORT_100X_S = 60.0  # the report after that hour at 100x (and K/100 times it above)
EXPLAIN_BAR_S = 1.0  # one store's timeline, at any scale: the page waits for it
SLA_BAR_X = 3.0  # a month's SLA of every store, against the weekly report on the same data
SLA_BAR_10X_S = 20.0  # the same at 10x (and K/10 times it at scale K >= 10)
EXPLAIN_HELD_BAR_S = 0.5  # the same with the file held open between timelines (the API)
LOAD_CLIENTS = 16  # concurrent HTTP clients of the load phase
LOAD_SECONDS = 15.0  # how long they ask for timelines (one client, and the CSVs: a third)
SMALL_LOAD_SECONDS = 1.5  # below 1x (the tests' tiny scale): the phase runs, quickly
LOAD_TIMELINES_BAR_PER_S = 100.0  # at 1x and below: timelines a second with LOAD_CLIENTS
LOAD_P99_BAR_S = 0.5  # and their p99 latency
# the report is the first on the loaded state, as `storemon report` makes it: it builds the
# stored business windows (the windows phase builds them again, as the asset does every other
# day of a live feed); the report after one more hour reads them
PHASES = (
    "floor", "ingest", "report", "windows", "explain", "load", "week", "late_fleet", "late_100",
    "stray", "special", "ingest_hour", "hour_report",
)
# above 1x: the batches of partitions too (a week of hourly reports, the fleet's late file: at
# most 10x and 3x a report at every scale); not the load phase (its bars are for 1x; one
# timeline at any scale is the explain phase's, through a reader as the API reads it); last,
# the live feed: one more hour of polls ingested, and the report after it
SCALED_PHASES = (
    "floor", "ingest", "report", "windows", "explain", "week", "late_fleet", "ingest_hour",
    "hour_report",
)
EXPLAINED_STORES = 20
HISTORY_PHASES = (
    "ingest", "settle", "first_report", "ingest_hour", "settle_hour", "report", "sla",
)

Out = Callable[[str], None]


# --- the data set ---------------------------------------------------------------------------


def dataset_params(scale: float, days: int = DAYS) -> dict:
    """What identifies a cached data set. 8 days: one poll file at 1x and below, one a day
    above (a fleet's feed arrives daily); longer histories: one file a day. Both have one more
    hour in a file of its own (the live feed's next delivery)."""
    history = days != DAYS
    return {
        "version": DATASET_VERSION,
        "stores": max(1, round(BASE_STORES * scale)),
        "days": days,
        "seed": SEED,
        "start": HISTORY_START if history else START,
        "poll_files": days if history or scale > 1 else 1,
        "extra_hours": 1,
    }


def ensure_dataset(params: dict, folder: Path, out: Out = print) -> dict:
    """Reuse the data set in ``folder`` if it was made with the same parameters, else make it."""
    from storemon_pipeline.tools.generate import generate_dataset

    manifest = folder / "dataset.json"
    if manifest.exists():
        info = json.loads(manifest.read_text())
        files = [info["menu_hours"], info["timezones"], *info["poll_files"]]
        files.append(info.get("special_hours") or folder / "special_hours.csv")
        if info.get("params") == params and all(Path(f).exists() for f in files):
            out(f"using cached data set in {folder}")
            return info
    if folder.exists():
        shutil.rmtree(folder)
    out(f"generating {params['stores']} stores x {params['days']} days in {folder} ...")
    info = generate_dataset(
        folder,
        params["stores"],
        params["days"],
        params["seed"],
        start=params["start"],
        poll_files=params["poll_files"],
        extra_hours=params["extra_hours"],
    )
    info["params"] = params
    manifest.write_text(json.dumps(info, indent=2))
    out(
        f"generated {info['polls']:,} polls ({info['bytes'] / 1e6:,.0f} MB) "
        f"in {info['seconds']:.1f} s"
    )
    return info


# --- phases, each run in a child process ----------------------------------------------------


def _limits():
    """The settings' DuckDB limits (STOREMON_DUCKDB_*), as the product's connections have."""
    from storemon_pipeline.settings import get_settings

    return get_settings().duckdb_limits


def phase_floor(*poll_files: str) -> dict:
    """The cheapest honest baseline: plain DuckDB (in memory, with its own defaults) loads the
    polls into a table and runs one window over them."""
    import duckdb

    con = duckdb.connect()
    began = time.perf_counter()
    con.execute(
        r"""
        CREATE TABLE polls AS
        SELECT store_id,
               lower(trim(status)) = 'active' AS active,
               -- a cast to TIMESTAMPTZ reads every form too, but is three times slower
               try_cast(regexp_replace(timestamp_utc, '( UTC|Z|\+00:00)$', '') AS TIMESTAMP) AS ts
        FROM read_csv(?, header = true, all_varchar = true)
        """,
        [list(poll_files)],
    )
    loaded = time.perf_counter()
    rows, stores, seconds, unparsed = con.execute(
        """
        SELECT count(*), count(DISTINCT store_id), sum(epoch(next_ts - ts)),
               count(*) FILTER (WHERE ts IS NULL)
        FROM (SELECT store_id, ts, lead(ts) OVER (PARTITION BY store_id ORDER BY ts) AS next_ts
              FROM polls)
        """
    ).fetchone()
    done = time.perf_counter()
    con.close()
    return {
        "seconds": done - began,
        "detail": f"load {loaded - began:.2f} s + window {done - loaded:.2f} s",
        "rows": rows,
        "stores": stores,
        "unparsed": unparsed,
    }


def phase_ingest(db_path: str, *files: str) -> dict:
    """Ingest files into a storemon database (new, or holding data already)."""
    from storemon_pipeline.engine.db import database
    from storemon_pipeline.engine.ingest import ingest_paths

    with database(db_path, limits=_limits()) as con:
        began = time.perf_counter()
        finished: list[float] = []  # each file's end: whether a file costs more as polls pile up
        results = ingest_paths(
            con, list(files), progress=lambda _: finished.append(time.perf_counter())
        )
        seconds = time.perf_counter() - began
    loaded = {r.feed: 0 for r in results}
    for r in results:
        loaded[r.feed] += r.rows_loaded
    starts = [began, *finished][:-1]
    file_seconds = [end - start for start, end in zip(starts, finished, strict=True)]
    poll_seconds = [s for s, r in zip(file_seconds, results, strict=True) if r.feed == "polls"]
    return {
        "seconds": seconds,
        "file_seconds": file_seconds,
        "detail": f"{len(results)} file(s): "
        + ", ".join(f"{n:,} {feed}" for feed, n in loaded.items())
        + (f"; poll files {poll_seconds[0]:.1f} s first, {poll_seconds[-1]:.1f} s last"
           if len(poll_seconds) > 1 else ""),
        "rows": loaded.get("polls", 0),
        "rejected": sum(r.rows_rejected for r in results),
        "refused": [r.file for r in results if r.status != "loaded"],
    }


def phase_windows(db_path: str) -> dict:
    """The business_windows asset building the stored windows around the latest poll again,
    as after a new hours snapshot or every other day of a live feed."""
    from storemon_pipeline.engine.db import database
    from storemon_pipeline.engine.report import keep_latest_windows

    with database(db_path, limits=_limits()) as con:
        con.execute("DELETE FROM business_windows_span")
        began = time.perf_counter()
        keep_latest_windows(con)
        seconds = time.perf_counter() - began
        (windows,) = con.execute("SELECT count(*) FROM business_windows").fetchone()
    return {"seconds": seconds, "detail": f"{windows:,} windows"}


def phase_report(db_path: str, out_path: str, *extra_files: str) -> dict:
    """A report as of the latest poll, written as CSV (what `storemon report` does); the
    ``extra_files`` are ingested first, untimed."""
    from storemon_pipeline.engine.db import database
    from storemon_pipeline.engine.ingest import ingest_paths
    from storemon_pipeline.engine.report import write_report_csv

    with database(db_path, limits=_limits()) as con:
        ingest_paths(con, list(extra_files))
        began = time.perf_counter()
        write_report_csv(con, Path(out_path), as_of=None)
        seconds = time.perf_counter() - began
    with open(out_path, "rb") as handle:
        rows = sum(1 for _ in handle) - 1
    return {"seconds": seconds, "rows": rows, "detail": f"{rows:,} stores"}


def phase_settle(db_path: str) -> dict:
    """The local days settled after an ingest (what `storemon settle` and the sla_days asset
    do): after the whole history at once, every day of it; after one more hour, the days that
    hour lets settle."""
    from storemon_pipeline.engine.db import database
    from storemon_pipeline.engine.settled import settle_days

    with database(db_path, limits=_limits()) as con:
        began = time.perf_counter()
        settled = settle_days(con)
        seconds = time.perf_counter() - began
    return {
        "seconds": seconds,
        "rows": settled.days,
        "detail": f"{settled.days:,} store-days of {settled.stores:,} stores in "
        f"{settled.passes} pass(es), {settled.waiting:,} stores waiting; "
        f"{settled.total_days:,} settled, {settled.first_date} to {settled.last_date}",
    }


def phase_sla(db_path: str, out_path: str, month: str) -> dict:
    """A calendar month's SLA of every store, written as CSV (what `storemon sla --month`
    does)."""
    from storemon_pipeline.engine.sla import month_period, sla_database, write_sla_csv

    with sla_database([Path(db_path)], limits=_limits()) as con:
        began = time.perf_counter()
        written = write_sla_csv(con, Path(out_path), month_period(month))
        seconds = time.perf_counter() - began
    return {
        "seconds": seconds,
        "rows": written.summary.stores,
        "detail": f"month {month}: {written.summary.stores:,} stores, "
        f"{written.summary.stores_below_target:,} below target",
    }


def phase_explain(db_path: str) -> dict:
    """``storemon explain`` of a few stores as of the latest poll, each from a fresh
    connection (the command's way): seconds per store, the mean; and the same stores through
    a reader that keeps the file open between them (the API's way, engine/readers.py)."""
    from storemon_pipeline.engine.db import database
    from storemon_pipeline.engine.explain import explain_store
    from storemon_pipeline.engine.readers import FileReader

    with database(db_path, read_only=True, limits=_limits()) as con:
        stores = [
            row[0]
            for row in con.execute(
                f"SELECT store_id FROM stores "
                f"USING SAMPLE reservoir({EXPLAINED_STORES} ROWS) REPEATABLE (7)"
            ).fetchall()
        ]
    times = []
    for store in stores:
        began = time.perf_counter()
        with database(db_path, read_only=True, limits=_limits()) as con:
            explain_store(con, store)
        times.append(time.perf_counter() - began)
    reader = FileReader(Path(db_path), wait_seconds=10.0, limits=_limits(), threads=1)  # the API's
    held = []
    try:
        for store in stores:
            began = time.perf_counter()
            with reader.connection() as con:
                explain_store(con, store)
            held.append(time.perf_counter() - began)
    finally:
        reader.close()
    # the first through the reader opens the file: the held figures are of the others
    warm = held[1:] or held
    return {
        "seconds": sum(times) / len(times),
        "held_seconds": sum(warm) / len(warm),
        "held_slowest_seconds": max(warm),
        "rows": len(times),
        "detail": f"one store's timeline, mean of {len(times)} (slowest {max(times):.2f} s); "
        f"file held open: {sum(warm) / len(warm):.3f} s (slowest {max(warm):.3f} s)",
    }


def phase_load(state_dir: str, report_csv: str, seconds: str) -> dict:
    """The REST API under load (tools/load.py): a real uvicorn serving the bench's state
    folder on 127.0.0.1, one client and then LOAD_CLIENTS clients asking for the timelines of
    random stores of the data set for ``seconds``, then LOAD_CLIENTS clients downloading the
    report phase's CSV as a finished report; the server stopped at the end. Seconds: the
    median timeline under load."""
    from storemon_pipeline.engine.db import database
    from storemon_pipeline.engine.ingest import data_version
    from storemon_pipeline.engine.report import latest_poll
    from storemon_pipeline.engine.state import write_latest_poll
    from storemon_pipeline.tools.load import run_load

    home = Path(state_dir)
    with database(home / "storemon.duckdb", read_only=True, limits=_limits()) as con:
        store_ids = [row[0] for row in con.execute("SELECT store_id FROM stores").fetchall()]
        # what every ingest leaves for the API (the default as-of of a timeline)
        write_latest_poll(home, latest_poll(con), data_version(con))
    csv = Path(report_csv)
    result = run_load(
        home, store_ids, csv if csv.exists() else None, clients=LOAD_CLIENTS,
        seconds=float(seconds), single_seconds=max(1.0, float(seconds) / 3),
        log_path=home / "load_api.log",
    )
    timelines = result["timelines"]
    return {
        "seconds": timelines["median_s"],
        "rows": timelines["ok"],
        "timelines_per_s": timelines["per_second"],
        "p99_s": timelines["p99_s"],
        **result,
    }


def phase_week(db_path: str, history_path: str) -> dict:
    """The 168 hourly reports of the week before the latest poll, in one pass, saved to a report
    history: what a single-run backfill of a week of partitions computes."""
    from storemon_pipeline.engine.db import database
    from storemon_pipeline.engine.history import (
        partition_as_of,
        partition_hour_of,
        update_history,
    )
    from storemon_pipeline.engine.report import latest_poll

    with database(db_path, limits=_limits()) as con:
        began = time.perf_counter()
        latest = latest_poll(con)
        newest_hour = partition_hour_of(latest)
        hours = [newest_hour - timedelta(hours=h) for h in range(168)]
        as_of_by_hour = {hour: partition_as_of(hour, latest) for hour in hours}
        rows = update_history(con, Path(history_path), as_of_by_hour).rows
        seconds = time.perf_counter() - began
    return {"seconds": seconds, "rows": rows, "detail": f"168 reports, {rows:,} rows saved"}


def phase_late(db_path: str, history_path: str, late_file: str, stores: str) -> dict:
    """A late poll file arriving a day after its hour (one new poll per store of ``stores``
    stores, "all" for the fleet, in the hour a day before the latest poll), then the run the
    sensor starts for it: the partitions of the week's history those polls change, recomputed
    for those stores. The history of the week phase is there; the ingest is timed apart."""
    from storemon_pipeline.engine.db import database
    from storemon_pipeline.engine.history import (
        partition_as_of,
        partition_hour_of,
        partitions_changed_by,
        update_history,
    )
    from storemon_pipeline.engine.ingest import ingest_paths
    from storemon_pipeline.engine.report import latest_poll

    with database(db_path, limits=_limits()) as con:
        latest = latest_poll(con)
        hour = partition_hour_of(latest) - timedelta(days=1)
        sample = (
            "" if stores == "all" else f"USING SAMPLE reservoir({int(stores)} ROWS) REPEATABLE (3)"
        )
        con.execute(
            f"""
            COPY (
                SELECT
                    store_id,
                    CASE WHEN hash(store_id) % 5 = 0 THEN 'inactive' ELSE 'active' END AS status,
                    strftime(
                        TIMESTAMP '{hour}' + to_microseconds(  -- not an instant stored yet
                            1_800_000_000 + (hash(store_id || '{stores}') % 1_700_000_000)::BIGINT),
                        '%Y-%m-%d %H:%M:%S.%f'
                    ) AS timestamp_utc
                FROM (SELECT store_id FROM stores {sample})
            ) TO '{late_file}' (HEADER)
            """
        )
        began = time.perf_counter()
        (result,) = ingest_paths(con, [late_file])
        ingested = time.perf_counter() - began
        began = time.perf_counter()
        changed = partitions_changed_by(result.poll_hours, latest, latest_poll(con))
        update = update_history(
            con, Path(history_path), {h: partition_as_of(h, latest) for h in changed},
            only_stale=True,
        )
        seconds = time.perf_counter() - began
    late = update.convergence
    return {
        "seconds": seconds,
        "rows": update.rows,
        "detail": f"{result.rows_loaded:,} late polls (ingest {ingested:.2f} s): "
        f"{late.stores:,} stores x {late.partitions} partitions recomputed, "
        f"{update.rows:,} rows saved",
    }


def phase_special(
    db_path: str, special_db_path: str, special_file: str, out_dir: str, repetitions: str
) -> dict:
    """The report with special hours against the same report without them. ``special_db_path``
    is a copy of ``db_path``; the special hours are ingested into it (untimed), then each is
    reported once to warm up (the ingest of a snapshot forgets the remembered searches, and
    the first report after it searches again) and ``repetitions`` times more,
    alternating (which goes first alternates too), as of the same instant, each from a fresh
    connection as `storemon report` makes it, building its business windows (the stored ones
    are forgotten first). Seconds: the median with special hours; the
    ratio is of the two medians (one report slowed by the machine's other load moves neither),
    the ratio of the bests beside it."""
    from statistics import median

    import duckdb

    from storemon_pipeline.engine.db import database
    from storemon_pipeline.engine.ingest import ingest_paths
    from storemon_pipeline.engine.report import WEEK, latest_poll, write_report_csv

    with database(special_db_path, limits=_limits()) as con:
        (result,) = ingest_paths(con, [special_file])
        if result.feed != "special_hours" or result.rows_loaded == 0 or result.rows_rejected:
            raise RuntimeError(f"special hours not loaded as they should be: {result}")
        as_of = latest_poll(con)
        # the local dates of the report's week (local dates are within a day of UTC dates)
        in_week, stores_in_week = con.execute(
            "SELECT count(*), count(DISTINCT store_id) FROM special_hours "
            "WHERE local_date BETWEEN $week_from::DATE - 1 AND $as_of::DATE",
            {"week_from": as_of - WEEK, "as_of": as_of},
        ).fetchone()
    csvs = {"plain": Path(out_dir) / "report_plain.csv",
            "special": Path(out_dir) / "report_special.csv"}
    dbs = {"plain": db_path, "special": special_db_path}

    cpu: dict[str, list[float]] = {"plain": [], "special": []}

    def report(kind: str) -> float:
        with database(dbs[kind], limits=_limits()) as con:
            # the special hours cost where windows are built: each report builds them
            con.execute("DELETE FROM business_windows_span")
            began, began_cpu = time.perf_counter(), time.process_time()
            write_report_csv(con, csvs[kind], as_of=as_of)
            cpu[kind].append(time.process_time() - began_cpu)
            return time.perf_counter() - began

    first = {kind: report(kind) for kind in ("plain", "special")}
    times: dict[str, list[float]] = {"plain": [], "special": []}
    for values in cpu.values():  # the timed reports' only
        values.clear()
    for repetition in range(int(repetitions)):
        for kind in ("plain", "special")[:: 1 if repetition % 2 else -1]:
            times[kind].append(report(kind))
    con = duckdb.connect()
    rows, changed = con.execute(
        "SELECT (SELECT count(*) FROM read_csv($special, all_varchar = true)), "
        "(SELECT count(*) FROM (SELECT * FROM read_csv($special, all_varchar = true) EXCEPT "
        "SELECT * FROM read_csv($plain, all_varchar = true)))",
        {"special": str(csvs["special"]), "plain": str(csvs["plain"])},
    ).fetchone()
    con.close()
    if not changed:
        raise RuntimeError("the special hours changed no store's row of the report")
    best = {kind: min(values) for kind, values in times.items()}
    middle = {kind: median(values) for kind, values in times.items()}
    # CPU seconds of all the process's threads: what the machine's other load moves least
    middle_cpu = {kind: median(values) for kind, values in cpu.items()}
    return {
        "seconds": middle["special"],
        "baseline_seconds": middle["plain"],
        "ratio": middle["special"] / middle["plain"],
        "best_seconds": best,
        "best_ratio": best["special"] / best["plain"],
        "median_cpu_seconds": middle_cpu,
        "cpu_ratio": middle_cpu["special"] / middle_cpu["plain"],
        "rows": rows,
        "special_rows": result.rows_loaded,
        "special_rows_in_week": in_week,
        "special_stores_in_week": stores_in_week,
        "stores_changed": changed,
        "times": times,
        "cpu_times": cpu,
        "first_seconds": first,
        "detail": f"median of {repetitions}: {middle['special']:.2f} s with / "
        f"{middle['plain']:.2f} s without = {middle['special'] / middle['plain']:.2f}x (bests "
        f"{best['special']:.2f} / {best['plain']:.2f} s = "
        f"{best['special'] / best['plain']:.2f}x; CPU {middle_cpu['special']:.2f} / "
        f"{middle_cpu['plain']:.2f} s = {middle_cpu['special'] / middle_cpu['plain']:.2f}x; "
        f"first after the ingest "
        f"{first['special']:.2f} s); {result.rows_loaded:,} special rows, {in_week:,} in the "
        f"report's week for {stores_in_week:,} stores; {changed:,} stores' rows changed",
    }


PHASE_FUNCTIONS: dict[str, Callable[..., dict]] = {
    "floor": phase_floor,
    "ingest": phase_ingest,
    "windows": phase_windows,
    "report": phase_report,
    "explain": phase_explain,
    "load": phase_load,
    "week": phase_week,
    "late_fleet": phase_late,
    "late_100": phase_late,
    "stray": phase_report,
    "special": phase_special,
    "ingest_hour": phase_ingest,
    "first_report": phase_report,
    "hour_report": phase_report,
    "sla": phase_sla,
    "settle": phase_settle,
    "settle_hour": phase_settle,
}


def run_child(
    name: str,
    args: list[str],
    run_dir: Path,
    env: dict[str, str] | None = None,
) -> dict:
    """Run one phase in a child process, in ``env``; returns its result plus the child's peak
    RSS."""
    result_path = run_dir / f"{name}.json"
    log_path = run_dir / f"{name}.log"
    result_path.unlink(missing_ok=True)
    command = [
        sys.executable,
        "-m",
        "storemon_pipeline.tools.bench",
        "_phase",
        name,
        str(result_path),
        *args,
    ]
    began = time.perf_counter()
    with open(log_path, "wb") as log:
        child = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env)
        # wait4, not Popen.wait: it also hands back the child's resource usage.
        _, status, usage = os.wait4(child.pid, 0)
        child.returncode = os.waitstatus_to_exitcode(status)
    wall = time.perf_counter() - began
    # The child's own figure is exact; rusage is the fallback if it died. On Linux rusage also
    # counts this parent's memory at fork time, so it is an upper bound. KiB, bytes on macOS.
    rusage_mb = usage.ru_maxrss / (1024 * 1024 if sys.platform == "darwin" else 1024)
    row = {"phase": name, "peak_rss_mb": rusage_mb, "process_seconds": wall}
    if child.returncode != 0 or not result_path.exists():
        lines = log_path.read_text(errors="replace").strip().splitlines()
        row.update(seconds=None, error=lines[-1] if lines else f"exit {child.returncode}")
        return row
    row.update(json.loads(result_path.read_text()))
    return row


def own_peak_rss_mb() -> float:
    """This process's peak resident memory since it was exec'd (Linux VmHWM)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    import resource

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024 if sys.platform == "darwin" else 1024)


# --- the benchmark --------------------------------------------------------------------------


def _bar(
    name: str, value: float | None, limit: float, unit: str, *, at_least: bool = False
) -> dict:
    """A bar: ``value`` at most ``limit`` (or, ``at_least``, no less than it)."""
    return {
        "kind": "bar",
        "bar": name,
        "value": value,
        "limit": limit,
        "unit": unit,
        "at_least": at_least,
        "passed": value is not None and (value >= limit if at_least else value <= limit),
    }


def _ratio(a: float | None, b: float | None) -> float | None:
    return None if a is None or not b else a / b


def _stray_polls_file(run_dir: Path, info: dict) -> Path:
    """Two valid polls ten months before the data set starts, of two of its stores."""
    with open(info["poll_files"][0]) as handle:
        handle.readline()
        stores = [handle.readline().split(",")[0] for _ in range(2)]
    path = run_dir / "stray_polls.csv"
    path.write_text(
        "store_id,status,timestamp_utc\n"
        f"{stores[0]},inactive,2022-03-20 10:00:00 UTC\n"
        f"{stores[1]},active,2022-03-21 03:17:12.5 UTC\n"
    )
    return path


def default_cache_dir() -> Path:
    """Where the data sets and results are kept without --cache-dir: ``<state>/bench``."""
    from storemon_pipeline.settings import get_settings

    return get_settings().state_dir / "bench"


def run_bench(
    scale: float = 1.0,
    cache_dir: Path | None = None,
    history_days: int | None = None,
    out: Out = print,
) -> list[dict]:
    """Generate (or reuse) data, time every phase, print and return the figures.

    The returned list has one ``kind="phase"`` dict per phase (seconds, peak_rss_mb, x_floor)
    and one ``kind="bar"`` dict per bar (value, limit, passed).
    """
    cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    days = history_days or DAYS
    name = f"scale-{scale:g}" + (f"-days-{days}" if history_days else "")
    folder = cache_dir / name
    info = ensure_dataset(dataset_params(scale, days), folder / "data", out)
    run_dir = folder / "run"
    if run_dir.exists():
        shutil.rmtree(run_dir)
    run_dir.mkdir(parents=True)
    db = run_dir / "storemon.duckdb"
    stray_db, special_db = run_dir / "stray.duckdb", run_dir / "special.duckdb"
    feeds = [info["menu_hours"], info["timezones"], *info["poll_files"]]
    arguments = {
        "floor": list(info["poll_files"]),
        "ingest": [str(db), *feeds],
        "windows": [str(db)],
        "report": [str(db), str(run_dir / "report.csv")],
        "explain": [str(db)],
        "load": [
            str(run_dir), str(run_dir / "report.csv"),
            str(LOAD_SECONDS if scale >= 1 else SMALL_LOAD_SECONDS),
        ],
        "week": [str(db), str(run_dir / "history.duckdb")],
        "late_fleet": [str(db), str(run_dir / "history.duckdb"), str(run_dir / "late.csv"), "all"],
        "late_100": [str(db), str(run_dir / "history.duckdb"), str(run_dir / "late100.csv"), "100"],
        "stray": [str(stray_db), str(run_dir / "stray.csv"), str(_stray_polls_file(run_dir, info))],
        # the feeds of the ingest phase are the three first: special hours are loaded here only
        "special": [
            str(db), str(special_db), str(info.get("special_hours")), str(run_dir),
            str(SPECIAL_REPETITIONS if scale >= 1 else SMALL_SPECIAL_REPETITIONS),
        ],
        "ingest_hour": [str(db), str(info.get("extra_poll_file"))],
        "first_report": [str(db), str(run_dir / "first_report.csv")],
        "hour_report": [str(db), str(run_dir / "hour_report.csv")],
        "sla": [str(db), str(run_dir / "sla.csv"), HISTORY_START[:7]],
        "settle": [str(db)],
        "settle_hour": [str(db)],
    }
    out(
        f"{info['stores']:,} stores, {info['polls']:,} polls over {days} days in "
        f"{len(info['poll_files'])} file(s), {info['bytes'] / 1e6:,.0f} MB of CSV; "
        f"{os.cpu_count()} CPUs"
    )
    rows = []
    phases = HISTORY_PHASES if history_days else PHASES if scale <= 1 else SCALED_PHASES
    for phase in phases:
        if phase == "stray":  # the same database, and the stray polls on top
            shutil.copyfile(db, stray_db)
        if phase == "special":  # the same database, and the special hours on top
            shutil.copyfile(db, special_db)
            wal = db.with_name(db.name + ".wal")
            if wal.exists():
                shutil.copyfile(wal, special_db.with_name(special_db.name + ".wal"))
        row = run_child(phase, arguments[phase], run_dir)
        rows.append({"kind": "phase", **row})
        if row.get("error"):
            out(f"  {phase} failed: {row['error']} (log: {run_dir / (phase + '.log')})")
    for path in (db, stray_db, special_db, run_dir / "history.duckdb"):
        for leftover in (path, path.with_name(path.name + ".wal")):
            leftover.unlink(missing_ok=True)

    by_phase = {row["phase"]: row for row in rows}
    floor = by_phase.get("floor", {}).get("seconds")
    for row in rows:
        row["x_floor"] = _ratio(row["seconds"], floor)
    if history_days:
        baseline = cache_dir / f"scale-{scale:g}" / "results.json"
        bars = _history_bars(scale, by_phase, baseline, out)
    else:
        bars = _bars(scale, by_phase)
    _print_table(rows, bars, info, out)
    (folder / "results.json").write_text(
        json.dumps({"scale": scale, "days": days, "rows": rows, "bars": bars}, indent=2)
    )
    if not history_days:
        _print_scaling(cache_dir, scale, by_phase, out)
    return rows + bars


def _bars(scale: float, by_phase: dict[str, dict]) -> list[dict]:
    factor = max(scale, 1.0)
    report = by_phase["report"]["seconds"]
    peak = max(row["peak_rss_mb"] for name, row in by_phase.items() if name != "floor")
    memory_bar = MEMORY_BAR_30X_MB if scale >= 30 else MEMORY_BAR_MB
    bars = [
        _bar("ingest", by_phase["ingest"]["seconds"], INGEST_BAR_S * factor, "s"),
        _bar("report", report, REPORT_BAR_S * factor, "s"),
        _bar("ingest / floor", by_phase["ingest"].get("x_floor"), INGEST_FLOOR_BAR_X, "x"),
        _bar("report / floor", by_phase["report"].get("x_floor"), report_floor_bar_x(scale), "x"),
        _bar("peak memory of a phase", peak, memory_bar, "MB"),
        _bar("one store's timeline", by_phase["explain"]["seconds"], EXPLAIN_BAR_S, "s"),
        _bar("one store's timeline, file held open", by_phase["explain"].get("held_seconds"),
             EXPLAIN_HELD_BAR_S, "s"),
    ]
    load = by_phase.get("load")
    if load is not None and scale <= 1:
        bars += [
            _bar(f"timelines/s with {LOAD_CLIENTS} clients", load.get("timelines_per_s"),
                 LOAD_TIMELINES_BAR_PER_S, "/s", at_least=True),
            _bar(f"p99 of a timeline, {LOAD_CLIENTS} clients", load.get("p99_s"),
                 LOAD_P99_BAR_S, "s"),
        ]
    if "week" in by_phase:
        bars += [
            _bar("week of hourly reports / report",
                 _ratio(by_phase["week"]["seconds"], report), WEEK_BAR_X, "x"),
            _bar("history after the fleet's late file / report",
                 _ratio(by_phase["late_fleet"]["seconds"], report), LATE_FLEET_BAR_X, "x"),
        ]
    if "stray" in by_phase:
        bars += [
            _bar("report after stray polls / report",
                 _ratio(by_phase["stray"]["seconds"], report), STRAY_BAR_X, "x"),
            _bar("history after 100 stores' late file",
                 by_phase["late_100"]["seconds"], LATE_STORES_BAR_S, "s"),
        ]
    if "special" in by_phase:  # both reports measured in the phase, alternately
        bars.append(_bar("report with special hours / without",
                         by_phase["special"].get("ratio"), SPECIAL_BAR_X, "x"))
    if "hour_report" in by_phase:
        bars += [
            _bar("ingest of one more hour", by_phase["ingest_hour"]["seconds"],
                 max(HOUR_INGEST_BAR_S, LIVE_HOUR_INGEST_100X_S * scale / 100), "s"),
            _bar("report after one more hour", by_phase["hour_report"]["seconds"],
                 LIVE_REPORT_100X_S * scale / 100 if scale >= 100 else REPORT_BAR_S * factor,
                 "s"),
        ]
    return bars


def _history_bars(
    scale: float, by_phase: dict[str, dict], baseline: Path, out: Out
) -> list[dict]:
    """The report after one more hour is what a live feed computes every hour; the first report
    after loading all the history at once also reads the history of the few stores never
    polled in their hours (then remembered), and is shown beside it."""
    report, first, sla = by_phase["report"], by_phase["first_report"], by_phase["sla"]
    bars = [
        _bar("ingest of one more hour", by_phase["ingest_hour"]["seconds"], HOUR_INGEST_BAR_S,
             "s"),
        _bar("peak memory of a phase", max(r["peak_rss_mb"] for r in by_phase.values()),
             MEMORY_BAR_MB, "MB"),
        _bar("month's SLA / report", _ratio(sla["seconds"], report["seconds"]), SLA_BAR_X, "x"),
    ]
    if scale >= 10:
        bars.append(_bar("month's SLA", sla["seconds"], SLA_BAR_10X_S * scale / 10, "s"))
    if not baseline.exists():
        out(f"no 8-day run at this scale to compare with ({baseline}): run it first")
        return bars
    base = {row["phase"]: row for row in json.loads(baseline.read_text())["rows"]}["report"]
    out(
        "first report after loading the history at once: "
        f"{_fmt(_ratio(first['seconds'], base['seconds']), '.2f')} x the time and "
        f"{_fmt(_ratio(first['peak_rss_mb'], base['peak_rss_mb']), '.2f')} x the memory of the "
        "8-day report"
    )
    return bars + [
        _bar("report time / 8-day report", _ratio(report["seconds"], base["seconds"]),
             HISTORY_BAR_X, "x"),
        _bar("report memory / 8-day report",
             _ratio(report["peak_rss_mb"], base["peak_rss_mb"]), HISTORY_BAR_X, "x"),
    ]


def _fmt(value: float | None, pattern: str) -> str:
    return "-" if value is None else format(value, pattern)


def _print_table(rows: list[dict], bars: list[dict], info: dict, out: Out) -> None:
    out("")
    out(f"{'phase':<12} {'seconds':>8} {'peak RSS MB':>12} {'x floor':>8}  detail")
    for row in rows:
        detail = row.get("error") or row.get("detail", "")
        out(
            f"{row['phase']:<12} {_fmt(row['seconds'], '8.2f')} "
            f"{row['peak_rss_mb']:>12.0f} {_fmt(row['x_floor'], '8.2f')}  {detail}"
        )
    loaded = next((r.get("rows") for r in rows if r["phase"] == "ingest"), None)
    reported = next((r.get("rows") for r in rows if r["phase"] == "report"), None)
    out("")
    out(
        f"polls generated {info['polls']:,}; loaded {_fmt(loaded, ',')}; "
        f"stores {info['stores']:,}; reported {_fmt(reported, ',')}"
    )
    for bar in bars:
        _print_bar(bar, out)


def _print_bar(bar: dict, out: Out) -> None:
    verdict = "PASS" if bar["passed"] else "FAIL"
    sign = ">=" if bar.get("at_least") else "<="
    out(
        f"bar: {bar['bar']:<36} {_fmt(bar['value'], '10.2f')} {bar['unit']:<2} "
        f"{sign} {bar['limit']:g} {bar['unit']:<2}  {verdict}"
    )


def _print_scaling(cache_dir: Path, scale: float, by_phase: dict[str, dict], out: Out) -> None:
    """Above 1x, how the ingest and the report grew since the last 1x run, beside the floor's
    growth: figures to read, not bars. The two runs may be hours apart on a host whose speed
    moves by 40 % within a day, and the 1x data set has one poll file where the others have
    eight; the bars against each run's own floor are what hold on any machine."""
    baseline = cache_dir / "scale-1" / "results.json"
    if scale <= 1 or not baseline.exists():
        return
    base = {row["phase"]: row for row in json.loads(baseline.read_text())["rows"]}
    floor_growth = _ratio(by_phase["floor"]["seconds"], base["floor"]["seconds"])
    for name in ("ingest", "report"):
        growth = _ratio(by_phase[name]["seconds"], base[name]["seconds"])
        out(f"{name}: {_fmt(growth, '.1f')} x the last 1x run's time "
            f"(the floor: {_fmt(floor_growth, '.1f')} x; the scale: {scale:g} x)")


def main(argv: list[str] | None = None) -> None:
    """Entry of a phase's child process: ``python -m storemon_pipeline.tools.bench _phase NAME
    ...`` (the benchmark itself is ``storemon bench``)."""
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] != ["_phase"]:
        raise SystemExit("usage: storemon bench [--scale K] [--history-days D]")
    name, result_path, *args = argv[1:]
    result = PHASE_FUNCTIONS[name](*args)
    result["peak_rss_mb"] = own_peak_rss_mb()
    Path(result_path).write_text(json.dumps(result))


if __name__ == "__main__":
    main()
