"""Ingest and reports over several shards (docs/semantics.md §2.14), step by step: one step per
shard, each in its own file (Dagster runs them as steps of their own, possibly on other
machines; the CLI runs them one after another), then one step that assembles what they did.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import duckdb

from storemon_pipeline.engine.db import ResourceLimits, connect_memory, database
from storemon_pipeline.engine.history import (
    assemble_history,
    compute_shard_results,
    consumed_backlog,
    converge_history,
    forget_converged,
    load_shard_results,
    partition_as_of,
)
from storemon_pipeline.engine.ingest import (
    FileResult,
    IngestGuards,
    StagedFile,
    csv_files,
    data_version,
    drop_expired_polls,
    load_staged,
    merge_shard_results,
    stage_file,
)
from storemon_pipeline.engine.report import (
    FinishedReport,
    NoPollsError,
    export_report_csv,
    kept_history,
    latest_poll,
    most_downtime,
    result_summary,
)
from storemon_pipeline.engine.settled import Settlement, merge_settlements, settle_days
from storemon_pipeline.engine.shards import (
    Shard,
    ensure_layout,
    shard_db_paths,
    union_connection,
)
from storemon_pipeline.engine.state import write_latest_poll

# What a failed run left in staging/ and shard_results/ is removed once it is this old: no run
# lives that long (dagster.yaml's run monitoring fails a run after an hour).
LEFTOVER_AGE_SECONDS = 6 * 3600


@dataclass(frozen=True)
class ShardedState:
    """What the steps of a sharded ingest or report need of the state folder: its files, the
    number of shards, a connection's limits and how long to wait for a held file. The
    application builds it from its settings (``Settings.sharded``)."""

    state_dir: Path
    shards: int
    history_path: Path
    staging_dir: Path
    shard_results_dir: Path
    limits: ResourceLimits
    lock_wait_seconds: float = 120.0
    guards: IngestGuards | None = None
    retention_days: int | None = None

    @property
    def shard_paths(self) -> list[Path]:
        return shard_db_paths(self.state_dir, self.shards)


@contextmanager
def shard_database(state: ShardedState, index: int) -> Iterator[duckdb.DuckDBPyConnection]:
    """Shard ``index``'s file, written by one step at a time (waiting while another holds it)."""
    with database(
        state.shard_paths[index], wait_seconds=state.lock_wait_seconds,
        limits=state.limits,
    ) as con:
        yield con


@contextmanager
def all_shards(state: ShardedState) -> Iterator[duckdb.DuckDBPyConnection]:
    """Every shard's file read-only, seen as one database (``shards.union_connection``)."""
    con = union_connection(state.shard_paths, state.limits)
    try:
        yield con
    finally:
        con.close()


@dataclass(frozen=True)
class ShardIngest:
    results: list[FileResult]
    expired: int  # polls dropped by the retention


@dataclass(frozen=True)
class ShardSettlement:
    settlement: Settlement  # the local days a shard (or all) settled
    seconds: float


def stage_files(
    state: ShardedState, paths: Sequence[Path], first: int = 0
) -> list[StagedFile]:
    """Check each file once and split its rows by shard (``ingest.stage_file``), numbered in
    order from ``first``; each file may be staged by a step of its own."""
    con = connect_memory(state.limits)
    try:
        return [
            stage_file(
                con, path, state.staging_dir, state.shards, state.guards,
                order=first + number,
            )
            for number, path in enumerate(paths)
        ]
    finally:
        con.close()


def ingest_shard(
    state: ShardedState,
    index: int,
    staged: Sequence[StagedFile],
    progress: Callable[[FileResult], None] | None = None,
) -> ShardIngest:
    """Load shard ``index``'s part of the staged files into its file, in order (a file loads
    once per shard); then the retention."""
    ensure_layout(state.state_dir, state.shards)
    shard = Shard(index, state.shards)
    results = []
    with shard_database(state, index) as con:
        for file in staged:
            result = load_staged(con, file, shard)
            if progress is not None:
                progress(result)
            results.append(result)
        expired = 0
        if state.retention_days:
            expired = drop_expired_polls(con, kept_history(state.retention_days))
    return ShardIngest(results, expired)


def settle_shard(state: ShardedState, index: int) -> ShardSettlement:
    """Settle shard ``index``'s local days that can be (engine/settled.py), after its ingest."""
    with shard_database(state, index) as con:
        started = time.perf_counter()
        settlement = settle_days(con)
    return ShardSettlement(settlement, time.perf_counter() - started)


def remove_staged(staged: Sequence[StagedFile]) -> None:
    """Once every shard loaded them."""
    for file in staged:
        if file.folder is not None:
            shutil.rmtree(file.folder, ignore_errors=True)


def sweep_leftovers(state: ShardedState, older_than: float = LEFTOVER_AGE_SECONDS) -> list[Path]:
    """Remove the staged files and shard results that failed runs left behind (a run that
    finishes removes its own); returns what was removed."""
    cutoff = time.time() - older_than
    removed = []
    for parent in (state.staging_dir, state.shard_results_dir):
        for folder in parent.glob("*") if parent.is_dir() else ():
            if folder.is_dir() and folder.stat().st_mtime < cutoff:
                shutil.rmtree(folder, ignore_errors=True)
                removed.append(folder)
    return removed


def finish_ingest(state: ShardedState) -> tuple[datetime | None, str]:
    """After the shards' ingest: the newest poll of all and the data version, written to
    ``latest_poll.json`` for the readers that do not open DuckDB; old leftovers swept."""
    sweep_leftovers(state)
    with all_shards(state) as con:
        newest, version = latest_poll(con), data_version(con)
    write_latest_poll(state.state_dir, newest, version)
    return newest, version


def ingest_one_after_another(state: ShardedState, paths: Sequence[Path]) -> ShardIngest:
    """The steps of a sharded ingest in this process, one after another (the CLI's way): the
    files' results as one ingest's, and the polls the retention dropped."""
    staged = stage_files(state, csv_files(paths))
    parts = [ingest_shard(state, k, staged) for k in range(state.shards)]
    remove_staged(staged)
    finish_ingest(state)
    return ShardIngest(
        merge_shard_results([part.results for part in parts]),
        sum(part.expired for part in parts),
    )


def shard_settlements(parts: Sequence[ShardSettlement]) -> ShardSettlement:
    """The shards' settlements as one (their seconds added)."""
    return ShardSettlement(
        merge_settlements([part.settlement for part in parts]),
        sum(part.seconds for part in parts),
    )


def newest_poll(state: ShardedState) -> datetime:
    """The newest poll of all shards."""
    ensure_layout(state.state_dir, state.shards)
    with all_shards(state) as con:
        newest = latest_poll(con)
    if newest is None:
        raise NoPollsError("no polls are loaded yet: ingest a store-status file first")
    return newest


def report_plan(state: ShardedState, hours: Sequence[datetime]) -> dict[datetime, datetime]:
    """The as-of of each partition hour (docs/semantics.md §2.12), from the newest poll of all
    shards."""
    newest = newest_poll(state)
    return {hour: partition_as_of(hour, newest) for hour in hours}


def report_shard(
    state: ShardedState, index: int, run_id: str, as_of_by_hour: dict[datetime, datetime]
) -> list[Path]:
    """Shard ``index``'s rows of the reports, left as files for ``assemble_report``."""
    with shard_database(state, index) as con:
        return compute_shard_results(
            con, state.shard_results_dir / run_id, index, as_of_by_hour
        )


def forget_shards_backlog(state: ShardedState, consumed: Sequence[tuple[int, datetime]]) -> None:
    """Each shard forgets its part of the backlog the assembled report worked through (a key
    across shards is its key in shard k times the number of shards, plus k)."""
    for index in sorted({key % state.shards for key, _ in consumed}):
        mine = [(key // state.shards, noted) for key, noted in consumed
                if key % state.shards == index]
        with shard_database(state, index) as con:
            forget_converged(con, mine)


def assemble_report(
    state: ShardedState,
    run_id: str,
    files: Sequence[Path],
    as_of_by_hour: dict[datetime, datetime],
    csv_path: Path,
    *,
    save_history: bool = True,
) -> FinishedReport:
    """The shards' rows as one report: the history rows of every partition (with
    ``save_history``) and the CSV of the newest, byte-identical to the one-file report. The
    shards' files are removed once assembled."""
    consumed: list[tuple[int, datetime]] = []
    with all_shards(state) as con:
        newest_hour = max(as_of_by_hour)
        as_of = as_of_by_hour[newest_hour]
        if save_history:
            late = converge_history(con, state.history_path, list(as_of_by_hour), run_id)
            consumed = consumed_backlog(con)
            rows = late.rows + assemble_history(
                con, files, state.history_path, as_of_by_hour, run_id
            )
        else:
            rows = 0
            load_shard_results(con, files, [as_of])
        export_report_csv(con, csv_path, as_of)
        assembled = FinishedReport(
            rows, as_of, result_summary(con, as_of), most_downtime(con, as_of),
            latest_poll(con), data_version(con),
        )
    forget_shards_backlog(state, consumed)
    for file in files:
        file.unlink(missing_ok=True)
    folder = state.shard_results_dir / run_id
    if folder.exists() and not any(folder.iterdir()):
        folder.rmdir()
    return assembled
