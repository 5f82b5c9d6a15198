"""Store shards (docs/semantics.md §2.14): the stores split into N DuckDB files by a stable rule
of their id, so that N processes (on N machines) ingest and report at once.

Every number of a report depends on its own store's feeds only (§2.11), so a shard holds
everything about its stores (polls, weekly and special hours, time-zone rows) and computes
their rows of any report by itself; the shards' rows together are the report. With one shard
(the default) the state is the single file ``storemon.duckdb``, exactly as without shards.
"""

from __future__ import annotations

import hashlib
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import duckdb

from storemon_pipeline.engine.db import (
    ResourceLimits,
    connect_memory,
    database,
    retry_while_locked,
    run_script,
)
from storemon_pipeline.engine.files import read_json, write_json_atomically

SHARDS_DIR = "shards"
LAYOUT_FILE = "layout.json"
SINGLE_FILE = "storemon.duckdb"
# The feed tables, as a shard holds them; ``stores.store_key`` is local to its file.
# How long a reader waits for a shard file that a process is writing.
LOCK_WAIT_SECONDS = 120.0
FEED_TABLES = (
    "stores", "polls", "business_hours", "special_hours", "timezones", "quarantine",
    "ingest_manifest",
)
# Seen through the views as well: a report over all shards reads what their searches remembered
# and what their history backlogs hold (engine/history.py). Files of an older version may lack a
# table: their part is left out.
KEYED_TABLES = (
    "stores", "polls", "search_memo", "history_backlog", "alerts", "sla_days",
    "sla_day_downtime", "sla_days_span",
)
# The settled days (engine/settled.py), which the SLA of all shards reads.
SETTLED_TABLES = ("sla_days", "sla_day_downtime", "sla_days_span")
# Seen through the views too, so that `reshard` carries the alerts and their events
# (docs/semantics.md §2.18) to the stores' new files.
ALERT_TABLES = ("alerts", "alert_outbox", "alert_delivery_attempts")
EMPTY_TABLES = {
    "search_memo": "SELECT NULL::BIGINT AS store_key, NULL::TIMESTAMP AS searched_before, "
    "NULL::TIMESTAMP AS last_in_hours_ts, NULL::BOOLEAN AS last_in_hours_active, "
    "NULL::TIMESTAMP AS last_ts, NULL::BOOLEAN AS last_active WHERE false",
    "history_backlog": "SELECT NULL::BIGINT AS store_key, NULL::TIMESTAMP AS changed_from, "
    "NULL::TIMESTAMP AS noted_at WHERE false",
    "special_hours": "SELECT NULL::VARCHAR AS store_id, NULL::DATE AS local_date, "
    "NULL::INTEGER AS start_sec, NULL::INTEGER AS end_sec, NULL::VARCHAR AS reason WHERE false",
    "alerts": "SELECT NULL::VARCHAR AS alert_id, NULL::BIGINT AS store_key, "
    "NULL::VARCHAR AS store_id, NULL::VARCHAR AS state, NULL::TIMESTAMP AS down_since, "
    "NULL::TIMESTAMP AS opened_as_of, NULL::TIMESTAMP AS resolved_at, "
    "NULL::TIMESTAMP AS resolved_as_of, NULL::BIGINT AS business_us_down, "
    "NULL::TIMESTAMP AS evaluated_as_of WHERE false",
    "alert_outbox": "SELECT NULL::VARCHAR AS event_key, NULL::VARCHAR AS alert_id, "
    "NULL::VARCHAR AS event, NULL::VARCHAR AS payload, NULL::TIMESTAMP AS created_as_of, "
    "NULL::TIMESTAMP AS created_at, NULL::INTEGER AS attempts, "
    "NULL::TIMESTAMP AS next_attempt_at, NULL::VARCHAR[] AS delivered_to, "
    "NULL::TIMESTAMP AS delivered_at, NULL::TIMESTAMP AS dead_at, NULL::VARCHAR AS last_error "
    "WHERE false",
    "alert_delivery_attempts": "SELECT NULL::VARCHAR AS event_key, NULL::VARCHAR AS webhook, "
    "NULL::TIMESTAMP AS posted_at, NULL::INTEGER AS status, NULL::VARCHAR AS error, "
    "NULL::DOUBLE AS seconds WHERE false",
}


def shard_of(key: str, shards: int) -> int:
    """The shard of a store id (or of any key): the first 32 bits of its MD5, modulo N. The SQL
    macro ``shard_of`` computes the same."""
    return int(hashlib.md5(key.encode()).hexdigest()[:8], 16) % shards


@dataclass(frozen=True)
class Shard:
    """Shard ``index`` of ``count``: what an ingest keeps of each file."""

    index: int
    count: int


def shard_db_paths(state_dir: Path, shards: int) -> list[Path]:
    """The DuckDB files of the feeds with ``shards`` shards: ``storemon.duckdb`` for one,
    ``shards/<k>/storemon.duckdb`` for more."""
    if shards == 1:
        return [state_dir / SINGLE_FILE]
    return [state_dir / SHARDS_DIR / str(k) / SINGLE_FILE for k in range(shards)]


def stored_shards(state_dir: Path) -> int:
    """How many shards the state folder holds (1 until a re-shard to more)."""
    layout = read_json(state_dir / SHARDS_DIR / LAYOUT_FILE)
    return 1 if layout is None else int(layout["shards"])


class ShardLayoutError(RuntimeError):
    """The state folder holds another number of shards than the settings ask for."""


def ensure_layout(state_dir: Path, shards: int) -> None:
    """Passes when the state folder holds ``shards`` shards, or nothing yet (then it will)."""
    stored = stored_shards(state_dir)
    if stored == shards:
        return
    if stored == 1 and not (state_dir / SINGLE_FILE).exists():
        write_json_atomically(state_dir / SHARDS_DIR / LAYOUT_FILE, {"shards": shards})
        return
    raise ShardLayoutError(
        f"the state folder holds {stored} shard(s) but STOREMON_SHARDS={shards}: run "
        f"`storemon reshard {shards}` to split the stores anew, or set STOREMON_SHARDS={stored}"
    )


def attach_shards(
    con: duckdb.DuckDBPyConnection, paths: Sequence[Path], view_prefix: str = ""
) -> None:
    """Attach the shard files read-only and make each feed table a view over all of them
    (``<view_prefix><table>``), with store keys made unique across shards (a key in shard k of
    N becomes key * N + k, small enough for the report's keys): what is loaded, seen as one
    database."""
    for k, path in enumerate(paths):
        retry_while_locked(
            lambda k=k, path=path: con.execute(f"ATTACH '{path}' AS shard_{k} (READ_ONLY)"),
            LOCK_WAIT_SECONDS,
        )
    present = set(con.execute(
        "SELECT database_name, table_name FROM duckdb_tables() WHERE database_name LIKE 'shard_%'"
    ).fetchall())
    for table in (*FEED_TABLES, "search_memo", "history_backlog", *ALERT_TABLES, *SETTLED_TABLES):
        parts = [
            f"SELECT * REPLACE (store_key * {len(paths)} + {k} AS store_key) "
            f"FROM shard_{k}.{table}" if table in KEYED_TABLES
            else f"SELECT * FROM shard_{k}.{table}"
            for k in range(len(paths))
            if (f"shard_{k}", table) in present
        ]
        if not parts and table not in EMPTY_TABLES:
            continue  # settled days in none of the files: the SLA reads its polls
        con.execute(
            f"CREATE OR REPLACE TEMP VIEW {view_prefix}{table} AS "
            + (" UNION ALL ".join(parts) if parts else EMPTY_TABLES[table])
        )


def reshard(state_dir: Path, shards: int, limits: ResourceLimits | None = None) -> int:
    """Split the stores anew into ``shards`` files, built from the current ones; returns the
    number of shards there were. The report history is kept; what earlier searches remembered
    is not (the next report searches again).

    The new files are written beside the old ones and swapped in at the end, so a failure
    leaves the old layout whole.
    """
    before = stored_shards(state_dir)
    sources = shard_db_paths(state_dir, before)
    building = state_dir / f"{SHARDS_DIR}.building"
    shutil.rmtree(building, ignore_errors=True)
    targets = [building / str(k) / SINGLE_FILE for k in range(shards)]
    existing = [source for source in sources if source.exists()]
    for k, target in enumerate(targets):
        with database(target, limits=limits) as con:
            if existing:
                attach_shards(con, existing, view_prefix="source_")
                run_script(con, "reshard_copy", {"shard": k, "shards": shards})
    # swap: the old files go, the new ones come
    old_dir = state_dir / f"{SHARDS_DIR}.old"
    shutil.rmtree(old_dir, ignore_errors=True)
    old_dir.mkdir(parents=True)
    for k, source in enumerate(sources):
        if source.exists():
            source.rename(old_dir / f"{k}.duckdb")
    shutil.rmtree(state_dir / SHARDS_DIR, ignore_errors=True)
    final = shard_db_paths(state_dir, shards)
    for target, place in zip(targets, final, strict=True):
        place.parent.mkdir(parents=True, exist_ok=True)
        target.rename(place)
    shutil.rmtree(building, ignore_errors=True)
    if shards > 1:
        write_json_atomically(state_dir / SHARDS_DIR / LAYOUT_FILE, {"shards": shards})
    shutil.rmtree(old_dir, ignore_errors=True)
    return before


def union_connection(
    paths: Sequence[Path], limits: ResourceLimits | None = None
) -> duckdb.DuckDBPyConnection:
    """An in-memory connection seeing the shards' feed tables as one (``attach_shards``); a
    shard that has no file yet gets an empty one."""
    for path in paths:
        if not path.exists():
            with database(path, wait_seconds=LOCK_WAIT_SECONDS, limits=limits):
                pass
    con = connect_memory(limits)
    attach_shards(con, paths)
    # what the business_windows asset shows, computed here and kept nowhere
    con.execute(
        "CREATE TEMP TABLE business_windows "
        "(store_key BIGINT, window_start TIMESTAMP, window_end TIMESTAMP)"
    )
    return con
