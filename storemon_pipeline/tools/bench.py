"""``storemon bench``: the speed and memory bars of the README, measured on generated data.

Each phase runs in its own child process so that its peak memory is its own (read from the
kernel's rusage of that child) and so that nothing cached by one phase helps the next. A floor
phase, plain DuckDB reading the same files and making one window pass, shows how far the
engine is from the cheapest thing that could possibly work on this machine.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

BASE_STORES = 14_000
DAYS = 8
SEED = 0
START = "2023-01-18"
# Bump when the generator's output changes, so cached data sets are made again.
DATASET_VERSION = 1
# Bars at 1x (README, Performance); at scale K the time bars are K times these (never less than 1x).
INGEST_BAR_S = 5.0
REPORT_BAR_S = 2.0
MEMORY_BAR_MB = 4096.0
PHASES = ("floor", "ingest", "windows", "report")

Out = Callable[[str], None]


# --- the data set ---------------------------------------------------------------------------


def dataset_params(scale: float) -> dict:
    """What identifies a cached data set; polls come as one file per 1x of scale."""
    return {
        "version": DATASET_VERSION,
        "stores": max(1, round(BASE_STORES * scale)),
        "days": DAYS,
        "seed": SEED,
        "start": START,
        "poll_files": max(1, math.ceil(scale)),
    }


def ensure_dataset(scale: float, folder: Path, out: Out = print) -> dict:
    """Reuse the data set in ``folder`` if it was made with the same parameters, else make it."""
    from storemon_pipeline.tools.generate import generate_dataset

    params = dataset_params(scale)
    manifest = folder / "dataset.json"
    if manifest.exists():
        info = json.loads(manifest.read_text())
        files = [info["menu_hours"], info["timezones"], *info["poll_files"]]
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
    )
    info["params"] = params
    manifest.write_text(json.dumps(info, indent=2))
    out(
        f"generated {info['polls']:,} polls ({info['bytes'] / 1e6:,.0f} MB) "
        f"in {info['seconds']:.1f} s"
    )
    return info


# --- phases, each run in a child process ----------------------------------------------------


def phase_floor(db_path: str, *poll_files: str) -> dict:
    """The cheapest honest baseline: load the polls with DuckDB and run one window over them."""
    import duckdb

    con = duckdb.connect(db_path)
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
    rows, stores, seconds = con.execute(
        """
        SELECT count(*), count(DISTINCT store_id), sum(epoch(next_ts - ts))
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
    }


def phase_ingest(db_path: str, *files: str) -> dict:
    """Ingest hours, zones and polls into a fresh storemon database."""
    from storemon_pipeline.engine.db import connect
    from storemon_pipeline.engine.ingest import ingest_paths

    con = connect(db_path)
    began = time.perf_counter()
    results = ingest_paths(con, list(files))
    seconds = time.perf_counter() - began
    con.close()
    loaded = {r.feed: 0 for r in results}
    for r in results:
        loaded[r.feed] += r.rows_loaded
    return {
        "seconds": seconds,
        "detail": ", ".join(f"{n:,} {feed}" for feed, n in loaded.items()),
        "rows": loaded.get("polls", 0),
        "rejected": sum(r.rows_rejected for r in results),
        "refused": [r.file for r in results if r.status != "loaded"],
    }


def phase_windows(db_path: str) -> dict:
    """Convert the business hours to UTC windows (a derived asset, timed on its own)."""
    from storemon_pipeline.engine.db import connect
    from storemon_pipeline.engine.windows import refresh_business_windows

    con = connect(db_path)
    began = time.perf_counter()
    refresh_business_windows(con)
    seconds = time.perf_counter() - began
    con.close()
    return {"seconds": seconds}


def phase_report(db_path: str, out_path: str) -> dict:
    """A report as of the latest poll, written as CSV."""
    from storemon_pipeline.engine.db import connect
    from storemon_pipeline.engine.report import write_report_csv

    con = connect(db_path)
    began = time.perf_counter()
    write_report_csv(con, Path(out_path), as_of=None)
    seconds = time.perf_counter() - began
    con.close()
    with open(out_path, "rb") as handle:
        rows = sum(1 for _ in handle) - 1
    return {"seconds": seconds, "rows": rows, "detail": f"{rows:,} stores"}


PHASE_FUNCTIONS: dict[str, Callable[..., dict]] = {
    "floor": phase_floor,
    "ingest": phase_ingest,
    "windows": phase_windows,
    "report": phase_report,
}


def run_child(name: str, args: list[str], run_dir: Path) -> dict:
    """Run one phase in a child process; returns its result plus the child's peak RSS."""
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
        child = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
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


def _bar(name: str, value: float | None, limit: float, unit: str) -> dict:
    return {
        "kind": "bar",
        "bar": name,
        "value": value,
        "limit": limit,
        "unit": unit,
        "passed": value is not None and value < limit,
    }


def run_bench(scale: float = 1.0, cache_dir: Path | None = None, out: Out = print) -> list[dict]:
    """Generate (or reuse) data at ``scale``, time every phase, print and return the figures.

    The returned list has one ``kind="phase"`` dict per phase (seconds, peak_rss_mb, x_floor)
    and one ``kind="bar"`` dict per bar (value, limit, passed).
    """
    if cache_dir is None:
        from storemon_pipeline.settings import get_settings

        cache_dir = get_settings().state_dir / "bench"
    folder = Path(cache_dir) / f"scale-{scale:g}"
    info = ensure_dataset(scale, folder / "data", out)
    run_dir = folder / "run"
    if run_dir.exists():
        shutil.rmtree(run_dir)
    run_dir.mkdir(parents=True)
    db, floor_db = run_dir / "storemon.duckdb", run_dir / "floor.duckdb"
    feeds = [info["menu_hours"], info["timezones"], *info["poll_files"]]
    arguments = {
        "floor": [str(floor_db), *info["poll_files"]],
        "ingest": [str(db), *feeds],
        "windows": [str(db)],
        "report": [str(db), str(run_dir / "report.csv")],
    }
    out(
        f"{info['stores']:,} stores, {info['polls']:,} polls in {len(info['poll_files'])} "
        f"file(s), {info['bytes'] / 1e6:,.0f} MB of CSV; {os.cpu_count()} CPUs"
    )
    rows = []
    for name in PHASES:
        row = run_child(name, arguments[name], run_dir)
        rows.append({"kind": "phase", **row})
        if row.get("error"):
            out(f"  {name} failed: {row['error']} (log: {run_dir / (name + '.log')})")
    for path in (db, floor_db):
        for leftover in (path, path.with_name(path.name + ".wal")):
            leftover.unlink(missing_ok=True)

    floor = rows[0]["seconds"]
    for row in rows:
        row["x_floor"] = row["seconds"] / floor if row["seconds"] and floor else None
    by_phase = {row["phase"]: row for row in rows}
    bars = _bars(scale, by_phase)
    _print_table(rows, bars, info, out)
    _save_results(folder, scale, rows, bars)
    _print_scaling(Path(cache_dir), scale, by_phase, bars, out)
    return rows + bars


def _bar_seconds(by_phase: dict[str, dict]) -> dict[str, float | None]:
    """What the bars measure: loading the files, and a report as the CLI makes one after an
    ingest (business windows, then the report)."""
    windows, report = by_phase["windows"]["seconds"], by_phase["report"]["seconds"]
    return {
        "ingest": by_phase["ingest"]["seconds"],
        "report": None if windows is None or report is None else windows + report,
    }


def _bars(scale: float, by_phase: dict[str, dict]) -> list[dict]:
    factor = max(scale, 1.0)
    seconds = _bar_seconds(by_phase)
    peak = max(by_phase[name]["peak_rss_mb"] for name in PHASES if name != "floor")
    return [
        _bar("ingest", seconds["ingest"], INGEST_BAR_S * factor, "s"),
        _bar("report (windows + report)", seconds["report"], REPORT_BAR_S * factor, "s"),
        _bar("peak memory of a phase", peak, MEMORY_BAR_MB, "MB"),
    ]


def _fmt(value: float | None, pattern: str) -> str:
    return "-" if value is None else format(value, pattern)


def _print_table(rows: list[dict], bars: list[dict], info: dict, out: Out) -> None:
    out("")
    out(f"{'phase':<9} {'seconds':>8} {'peak RSS MB':>12} {'x floor':>8}  detail")
    for row in rows:
        detail = row.get("error") or row.get("detail", "")
        out(
            f"{row['phase']:<9} {_fmt(row['seconds'], '8.2f')} "
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
        verdict = "PASS" if bar["passed"] else "FAIL"
        out(
            f"bar: {bar['bar']:<30} {_fmt(bar['value'], '10.2f')} {bar['unit']:<2} "
            f"< {bar['limit']:.0f} {bar['unit']:<2}  {verdict}"
        )


def _save_results(folder: Path, scale: float, rows: list[dict], bars: list[dict]) -> None:
    (folder / "results.json").write_text(
        json.dumps({"scale": scale, "rows": rows, "bars": bars}, indent=2)
    )


def _print_scaling(
    cache_dir: Path, scale: float, by_phase: dict[str, dict], bars: list[dict], out: Out
) -> None:
    """Above 1x, compare with the last 1x run (if any): time must grow less than the scale."""
    baseline = cache_dir / "scale-1" / "results.json"
    if scale <= 1 or not baseline.exists():
        return
    base = _bar_seconds(
        {row["phase"]: row for row in json.loads(baseline.read_text())["rows"]}
    )
    for name, now in _bar_seconds(by_phase).items():
        then = base.get(name)
        if now is None or not then:
            continue
        bar = _bar(f"{name} time vs last 1x run", now / then, scale, "x")
        bars.append(bar)
        out(
            f"bar: {bar['bar']:<30} {bar['value']:10.2f} x  < {scale:g} x   "
            f"{'PASS' if bar['passed'] else 'FAIL'}"
        )


def main(argv: list[str] | None = None) -> None:
    """Entry of a phase's child process: ``python -m storemon_pipeline.tools.bench _phase NAME ...``
    (the benchmark itself is ``storemon bench``)."""
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] != ["_phase"]:
        raise SystemExit("usage: storemon bench [--scale K]")
    name, result_path, *args = argv[1:]
    result = PHASE_FUNCTIONS[name](*args)
    result["peak_rss_mb"] = own_peak_rss_mb()
    Path(result_path).write_text(json.dumps(result))


if __name__ == "__main__":
    main()
