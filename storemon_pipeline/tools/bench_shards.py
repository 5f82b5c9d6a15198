"""``storemon bench --shards N --workers K``: what splitting the stores into shards costs and
gains, measured on generated data.

The steps of a sharded ingest (one per file, one per shard, one to finish) and report (one per
shard, one to assemble) run on K warm worker processes, one step at a time each: what K Celery
workers do, without the broker's and Dagster's per-step overhead (measured separately in the
README). A worker's peak memory is the largest of its steps'.

Three runs on the same data:

- one file, today's single process (the baseline);
- N shards on K workers, DuckDB using every core: the price of the fan-out;
- N shards with DuckDB pinned to one thread per process (standing in for one machine per
  worker), on one worker and on K: the speed-up more machines give.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import shutil
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from storemon_pipeline.tools.bench import (
    Out,
    _bar,
    _fmt,
    _print_bar,
    _ratio,
    dataset_params,
    ensure_dataset,
    own_peak_rss_mb,
    run_child,
)

FAN_OUT_BAR_X = 1.3  # N shards on K workers, against one file in one process
WORKER_MEMORY_SHARE = 0.5  # a worker's peak, against the one-file peak ...
WORKER_MEMORY_MARGIN_MB = 300.0  # ... plus this
PINNED_REPORT_BAR_X = 0.65  # K workers against one, DuckDB on one thread per process
PINNED_INGEST_BAR_X = 0.75


# --- steps, run by warm worker processes ----------------------------------------------------


def _warm_worker(env: dict[str, str]) -> None:
    """A worker as Celery's would be when a step reaches it: settings read, code imported."""
    os.environ.clear()
    os.environ.update(env)
    import storemon_pipeline.engine.sharded  # noqa: F401


def _run_step(step: Callable[..., object], *args: object) -> tuple[object, float]:
    """A step's result and the worker's peak memory so far."""
    return step(*args), own_peak_rss_mb()


def _steps(pool: ProcessPoolExecutor, step: Callable[..., object], calls: list[tuple]) -> list:
    futures = [pool.submit(_run_step, step, *call) for call in calls]
    return [future.result() for future in futures]


def _settings(home: Path, shards: int):
    from storemon_pipeline.settings import Settings

    return Settings(home=home, shards=shards).sharded


def stage_step(home: Path, shards: int, order: int, path: str):
    from storemon_pipeline.engine.sharded import stage_files

    return stage_files(_settings(home, shards), [Path(path)], first=order)[0]


def ingest_step(home: Path, shards: int, index: int, staged: list) -> None:
    from storemon_pipeline.engine.sharded import ingest_shard

    ingest_shard(_settings(home, shards), index, staged)


def finish_step(home: Path, shards: int) -> None:
    from storemon_pipeline.engine.sharded import finish_ingest

    finish_ingest(_settings(home, shards))


def report_step(home: Path, shards: int, index: int, plan: dict) -> list[Path]:
    from storemon_pipeline.engine.sharded import report_shard

    return report_shard(_settings(home, shards), index, "bench", plan)


def assemble_step(home: Path, shards: int, files: list[Path], plan: dict, out: Path) -> None:
    from storemon_pipeline.engine.sharded import assemble_report

    assemble_report(_settings(home, shards), "bench", files, plan, out, save_history=False)


def _pool(workers: int, env: dict[str, str]) -> ProcessPoolExecutor:
    pool = ProcessPoolExecutor(
        workers, mp_context=multiprocessing.get_context("spawn"),
        initializer=_warm_worker, initargs=(env,),
    )
    list(pool.map(time.sleep, [0.2] * workers))  # every worker started and warm
    return pool


def sharded_run(
    home: Path, info: dict, shards: int, workers: int, env: dict[str, str], out_csv: Path
) -> dict:
    """A sharded ingest of the data set (a step per file, a step per shard, one to finish),
    then a report as of its latest poll (a step per shard, one to assemble), on ``workers``
    warm processes: wall times and the largest worker's peak memory of each."""
    from storemon_pipeline.engine.history import partition_hour_of
    from storemon_pipeline.engine.sharded import newest_poll, remove_staged

    shutil.rmtree(home, ignore_errors=True)
    feeds = [info["menu_hours"], info["timezones"], *info["poll_files"]]
    with _pool(workers, env) as pool:
        began = time.perf_counter()
        staged = _steps(pool, stage_step, [(home, shards, n, f) for n, f in enumerate(feeds)])
        staged = [file for file, _ in staged]
        loads = _steps(pool, ingest_step, [(home, shards, k, staged) for k in range(shards)])
        finish = _steps(pool, finish_step, [(home, shards)])
        ingest_seconds = time.perf_counter() - began
        ingest_peak = max(peak for _, peak in loads + finish)
    remove_staged(staged)

    newest = newest_poll(_settings(home, shards))
    plan = {partition_hour_of(newest): newest}
    with _pool(workers, env) as pool:
        began = time.perf_counter()
        parts = _steps(pool, report_step, [(home, shards, k, plan) for k in range(shards)])
        files = [file for part, _ in parts for file in part]
        assembled = _steps(pool, assemble_step, [(home, shards, files, plan, out_csv)])
        report_seconds = time.perf_counter() - began
        report_peak = max(peak for _, peak in parts + assembled)
    return {
        "ingest_seconds": ingest_seconds,
        "report_seconds": report_seconds,
        "ingest_peak_mb": ingest_peak,
        "report_peak_mb": report_peak,
        "csv": str(out_csv),
    }


def run_shard_bench(
    shards: int,
    workers: int,
    scale: float = 1.0,
    cache_dir: Path | None = None,
    out: Out = print,
) -> list[dict]:
    if cache_dir is None:
        from storemon_pipeline.settings import get_settings

        cache_dir = get_settings().state_dir / "bench"
    folder = Path(cache_dir) / f"scale-{scale:g}"
    info = ensure_dataset(dataset_params(scale), folder / "data", out)
    run_dir = folder / f"shards-{shards}-workers-{workers}"
    shutil.rmtree(run_dir, ignore_errors=True)
    run_dir.mkdir(parents=True)
    out(
        f"{info['stores']:,} stores, {info['polls']:,} polls; {shards} shards on {workers} "
        f"worker(s); {os.cpu_count()} CPUs"
    )
    unpinned = {k: v for k, v in os.environ.items() if k != "STOREMON_DUCKDB_THREADS"}
    pinned = {**unpinned, "STOREMON_DUCKDB_THREADS": "1"}

    one_db = run_dir / "one" / "storemon.duckdb"
    one_db.parent.mkdir()
    feeds = [info["menu_hours"], info["timezones"], *info["poll_files"]]
    one_ingest = run_child("ingest", [str(one_db), *feeds], run_dir, env=unpinned)
    one_report = run_child("report", [str(one_db), str(run_dir / "one.csv")], run_dir,
                           env=unpinned)
    one = {
        "ingest_seconds": one_ingest["seconds"],
        "report_seconds": one_report["seconds"],
        "ingest_peak_mb": one_ingest["peak_rss_mb"],
        "report_peak_mb": one_report["peak_rss_mb"],
    }
    runs = {"one file, one process": one}
    for name, count, env in (
        (f"{shards} shards, {workers} workers", workers, unpinned),
        (f"{shards} shards, 1 worker, 1 thread", 1, pinned),
        (f"{shards} shards, {workers} workers, 1 thread", workers, pinned),
    ):
        folder = run_dir / name.replace(" ", "").replace(",", "-")
        runs[name] = sharded_run(folder, info, shards, count, env, folder.with_suffix(".csv"))
    fan_out = runs[f"{shards} shards, {workers} workers"]
    one_worker = runs[f"{shards} shards, 1 worker, 1 thread"]
    k_workers = runs[f"{shards} shards, {workers} workers, 1 thread"]
    differing = sum(
        Path(run["csv"]).read_bytes() != (run_dir / "one.csv").read_bytes()
        for run in (fan_out, one_worker, k_workers)
    )

    out("")
    out(f"{'run':<34} {'ingest s':>9} {'report s':>9} {'ingest MB':>10} {'report MB':>10}")
    for name, run in runs.items():
        out(
            f"{name:<34} {_fmt(run['ingest_seconds'], '9.2f')} "
            f"{_fmt(run['report_seconds'], '9.2f')} {run['ingest_peak_mb']:>10.0f} "
            f"{run['report_peak_mb']:>10.0f}"
        )
    memory_limit = (
        WORKER_MEMORY_SHARE * max(one["ingest_peak_mb"], one["report_peak_mb"])
        + WORKER_MEMORY_MARGIN_MB
    )
    bars = [
        _bar("sharded CSVs not byte-identical", differing, 0, ""),
        _bar("report: shards / one file", _ratio(fan_out["report_seconds"],
                                                   one["report_seconds"]), FAN_OUT_BAR_X, "x"),
        _bar("ingest: shards / one file", _ratio(fan_out["ingest_seconds"],
                                                   one["ingest_seconds"]), FAN_OUT_BAR_X, "x"),
        _bar("peak memory of a step", max(fan_out["ingest_peak_mb"], fan_out["report_peak_mb"]),
             memory_limit, "MB"),
        _bar(f"pinned report: {workers} workers / 1",
             _ratio(k_workers["report_seconds"], one_worker["report_seconds"]),
             PINNED_REPORT_BAR_X, "x"),
        _bar(f"pinned ingest: {workers} workers / 1",
             _ratio(k_workers["ingest_seconds"], one_worker["ingest_seconds"]),
             PINNED_INGEST_BAR_X, "x"),
    ]
    for bar in bars:
        _print_bar(bar, out)
    (run_dir / "results.json").write_text(json.dumps({"runs": runs, "bars": bars}, indent=2))
    return bars
