"""Opening the DuckDB file, within limits, and loading the project's SQL."""

from __future__ import annotations

import fcntl
import os
import re
import shutil
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path
from typing import TypeVar

import duckdb
import psutil

from storemon_pipeline.engine.files import free_disk_bytes

T = TypeVar("T")

# A connection's limits when its caller gives none; the application passes its settings'
# (STOREMON_DUCKDB_*), whose defaults are these. The memory is a fixed budget, not a share of
# the machine: the work that reads every store is chunked to fit it (engine/report.py), so
# the fleet's size never changes what a process needs, and several processes (the daemon's
# runs, the API's readers, the CLI) fit beside each other.
DEFAULT_MEMORY_MB = 2048
MACHINE_MEMORY_SHARE = 0.6  # at most this share of a small machine
DEFAULT_TEMP_LIMIT_GB = 20.0


def default_memory_mb() -> int:
    """DEFAULT_MEMORY_MB, or MACHINE_MEMORY_SHARE of the machine's memory if that is less."""
    machine_mb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**20
    return int(min(DEFAULT_MEMORY_MB, machine_mb * MACHINE_MEMORY_SHARE))


@dataclass(frozen=True)
class ResourceLimits:
    """What one DuckDB connection may use: memory, spill space on disk, threads.

    A query that needs more fails (ResourceLimitError) instead of swapping or filling the disk.
    """

    memory_mb: int
    temp_gb: float
    threads: int | None = None  # None: DuckDB's default, one per core

    @classmethod
    def default(cls) -> ResourceLimits:
        """The engine's own limits: 2 GB of memory, 20 GB of spill space."""
        return cls(default_memory_mb(), DEFAULT_TEMP_LIMIT_GB)

    def apply(self, con: duckdb.DuckDBPyConnection) -> None:
        con.execute("SET enable_progress_bar = false")
        # DuckDB turns an ASOF join whose left side it expects to be small into a nested loop:
        # its estimate for our temp tables is often far too small (thousands of store-periods
        # read in a nested loop took 1.4 s instead of 0.2 s), and the sort-based join is never
        # much slower
        con.execute("SET asof_loop_join_threshold = 0")
        con.execute(f"SET memory_limit = '{int(self.memory_mb)}MiB'")
        con.execute(f"SET max_temp_directory_size = '{int(self.temp_gb * 1024)}MiB'")
        if self.threads is not None:
            con.execute(f"SET threads = {int(self.threads)}")


_SIZE_UNITS = {"bytes": 1, "KiB": 2**10, "MiB": 2**20, "GiB": 2**30, "TiB": 2**40,
               "KB": 10**3, "MB": 10**6, "GB": 10**9, "TB": 10**12}


def memory_limit_bytes(con: duckdb.DuckDBPyConnection) -> int:
    """The memory limit a connection was given, read from DuckDB itself (work sized from it
    needs no argument: the connection carries its limit)."""
    text = con.execute("SELECT current_setting('memory_limit')").fetchone()[0]
    match = re.fullmatch(r"([\d.]+)\s*(\w+)", text.strip())
    if match is None or match.group(2) not in _SIZE_UNITS:
        raise ValueError(f"unexpected DuckDB memory limit {text!r}")
    return int(float(match.group(1)) * _SIZE_UNITS[match.group(2)])


class ResourceLimitError(RuntimeError):
    """A query needed more memory or spill space than its connection may use."""


@contextmanager
def resource_errors(limits: ResourceLimits) -> Iterator[None]:
    """Turn DuckDB's out-of-memory errors into one that names the settings to change."""
    try:
        yield
    except duckdb.OutOfMemoryException as exc:
        reason = str(exc).strip().splitlines()[0].rstrip(".")
        raise ResourceLimitError(
            f"DuckDB ran out of room ({reason}). Its limits are "
            f"STOREMON_DUCKDB_MEMORY_LIMIT_MB={limits.memory_mb} (memory) and "
            f"STOREMON_DUCKDB_TEMP_LIMIT_GB={limits.temp_gb:g} (spill files on disk): raise "
            "them if the machine has room, or ask for less work at once."
        ) from exc


@cache
def sql(name: str) -> str:
    """The text of ``storemon_pipeline/engine/sql/<name>.sql``."""
    return resources.files("storemon_pipeline.engine").joinpath("sql", f"{name}.sql").read_text()


def run_script(
    con: duckdb.DuckDBPyConnection, name: str, params: dict[str, object] | None = None
) -> None:
    """Run the statements of ``sql/<name>.sql`` one by one, each with the parameters it names
    (DuckDB binds parameters to one statement at a time)."""
    for statement in re.split(r";\s*\n", sql(name)):
        code = re.sub(r"--[^\n]*", "", statement)
        if not code.strip():
            continue
        used = {k: v for k, v in (params or {}).items() if re.search(rf"\${k}\b", code)}
        con.execute(code, used or None)


def owns_table(con: duckdb.DuckDBPyConnection, table: str, *, writing: bool = False) -> bool:
    """Whether ``table`` is a table of the connection's own database (not of a view over the
    shards), and, with ``writing``, one the connection may write: what the engine remembers
    between runs is read and kept only there."""
    return con.execute(
        """
        SELECT count(*) > 0
        FROM duckdb_tables() AS tables
        JOIN duckdb_databases() AS databases USING (database_name)
        WHERE tables.database_name = current_database()
          AND tables.schema_name = 'main'
          AND tables.table_name = $table
          AND NOT (databases.readonly AND $writing)
        """,
        {"table": table, "writing": writing},
    ).fetchone()[0]


def ensure_spill_room(folder: Path, limits: ResourceLimits) -> None:
    """A report does not start when the disk cannot give it the spill space it may use: it
    would fail late, or fill the disk."""
    free = free_disk_bytes(folder)
    if free < limits.temp_gb * 2**30:
        raise ResourceLimitError(
            f"the state folder's disk has {free / 2**30:.1f} GB free, less than the "
            f"{limits.temp_gb:g} GB a report may spill (STOREMON_DUCKDB_TEMP_LIMIT_GB): free "
            "some space, or lower the limit"
        )


def is_lock_error(exc: BaseException) -> bool:
    """DuckDB's answer when another process holds the file (or, in this process, a connection
    opened with the other mode: read-only against writable)."""
    if isinstance(exc, duckdb.IOException):
        return "lock" in str(exc).lower()
    return isinstance(exc, duckdb.ConnectionException) and "different configuration" in str(exc)


def retry_while_locked(
    action: Callable[[], T], wait_seconds: float, *, max_delay: float = 1.0
) -> T:
    """``action()``, tried again while another process holds a DuckDB file it opens (DuckDB lets
    one process write a file at a time), for up to ``wait_seconds``."""
    deadline = time.monotonic() + wait_seconds
    delay = 0.02
    while True:
        try:
            return action()
        except (duckdb.IOException, duckdb.ConnectionException) as exc:
            if not is_lock_error(exc) or time.monotonic() >= deadline:
                raise
            time.sleep(delay)
            delay = min(delay * 2, max_delay)


# A writer announces itself before it opens a file, so that the processes that keep the file
# open for reading between their reads (the API, engine/readers.py) let it go: DuckDB lets no
# process open a file for writing while another holds it open, even read-only. Readers react
# within their poll interval once their reads in flight are done; a writer waits at least
# this long for them, whatever its own wait.
READERS_YIELD_SECONDS = 5.0
WRITER_RETRY_SECONDS = 0.1  # how often a waiting writer tries the file again


class WriterIntent:
    """``<database>.writer``, a lock file beside a DuckDB file: a writer holds it exclusively
    (flock) while it tries to open the file; readers test it without waiting. The kernel
    releases it when the writer's process dies, so a crash leaves nothing stale."""

    def __init__(self, path: Path | str) -> None:
        self.path = writer_intent_path(Path(path))
        # read-only is enough for a flock: a reader of a folder it may not write can test it
        self._fd = os.open(self.path, os.O_RDONLY | os.O_CREAT, 0o644)
        self._held = False

    def announce(self) -> None:
        """Hold the intent (a writer): tried without waiting, since readers only test it for
        a moment and another writer already announcing does for both."""
        if not self._held:
            try:
                fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                self._held = True
            except BlockingIOError:
                pass

    def announced(self) -> bool:
        """Whether a writer holds the intent (a reader's test; readers never block each
        other)."""
        try:
            fcntl.flock(self._fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(self._fd, fcntl.LOCK_UN)
        return False

    def close(self) -> None:
        os.close(self._fd)  # releases the lock too

    def __enter__(self) -> WriterIntent:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def writer_intent_path(path: Path) -> Path:
    return path.with_name(path.name + ".writer")


def _open_for_writing(path: Path, wait_seconds: float) -> duckdb.DuckDBPyConnection:
    """The file opened for writing, announced to its readers while it is tried: waits for
    them (in-flight reads) at least READERS_YIELD_SECONDS, for other writers ``wait_seconds``."""
    with WriterIntent(path) as intent:

        def attempt() -> duckdb.DuckDBPyConnection:
            intent.announce()
            return duckdb.connect(str(path))

        return retry_while_locked(
            attempt, max(wait_seconds, READERS_YIELD_SECONDS), max_delay=WRITER_RETRY_SECONDS
        )


SPILL_FOLDER_PREFIX = ".duckdb-spill-"
# what follows the prefix and this machine's name: the process id and a random id
_SPILL_OWNER = re.compile(r"(\d+)-[0-9a-f]{12}")


def _own_spill_folder(con: duckdb.DuckDBPyConnection, near: Path) -> None:
    """Give the connection a spill folder of its own in ``near``. DuckDB names its spill files
    alike in every process (``duckdb_temp_storage_S192K-0.tmp`` in ``<file>.tmp``, or in ``.tmp``
    of the working directory for an in-memory database): two processes spilling there at once
    overwrite each other's blocks (two staging steps of 100x poll files failed with "Could not
    read enough bytes"). One writer per file is safe; readers and in-memory work are not.
    DuckDB creates the folder when it first spills and removes it when the connection closes;
    what a killed process left is swept by the next connection made beside it."""
    host = _machine_name()
    ours = f"{SPILL_FOLDER_PREFIX}{host}-{os.getpid()}-"
    current = con.execute("SELECT current_setting('temp_directory')").fetchone()[0]
    if Path(current).name.startswith(ours):
        # DuckDB shares one database instance per file within a process: another connection
        # of this process to the file gave it its folder (which cannot change once used)
        return
    _sweep_spill_folders_of_gone_processes(near, host)
    con.execute(f"SET temp_directory = '{near / (ours + uuid.uuid4().hex[:12])}'")


@cache
def _machine_name() -> str:
    """This machine's name as a spill folder carries it: a folder beside a file on a shared
    disk may be another machine's, whose processes this one cannot see."""
    return re.sub(r"[^A-Za-z0-9.]", "_", os.uname().nodename) or "localhost"


def _sweep_spill_folders_of_gone_processes(near: Path, host: str) -> None:
    """Remove the spill folders in ``near`` of this machine's processes that are gone (killed
    while spilling: DuckDB had no chance to remove them, and they may hold gigabytes)."""
    try:
        candidates = list(near.glob(f"{SPILL_FOLDER_PREFIX}{host}-*"))
    except OSError:
        return
    for folder in candidates:
        owner = _SPILL_OWNER.fullmatch(folder.name[len(SPILL_FOLDER_PREFIX) + len(host) + 1:])
        if owner is not None and not psutil.pid_exists(int(owner.group(1))):
            shutil.rmtree(folder, ignore_errors=True)


def connect_memory(limits: ResourceLimits | None = None) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB connection within ``limits``, for reading attached files."""
    con = duckdb.connect()
    (limits or ResourceLimits.default()).apply(con)
    _own_spill_folder(con, Path(tempfile.gettempdir()))
    con.execute(sql("macros"))
    return con


def connect(
    path: Path | str,
    *,
    read_only: bool = False,
    wait_seconds: float = 0.0,
    limits: ResourceLimits | None = None,
) -> duckdb.DuckDBPyConnection:
    """Open (and create the schema of) a storemon DuckDB file, within ``limits`` (default:
    ``ResourceLimits.default()``).

    DuckDB lets one process hold a file for writing; with ``wait_seconds`` we retry while
    another process holds it instead of failing at once. A writer announces itself to the
    processes that keep the file open for reading (``WriterIntent``) and waits for them.
    """
    limits = limits or ResourceLimits.default()
    path = Path(path)
    if not read_only:
        path.parent.mkdir(parents=True, exist_ok=True)
    if read_only:
        con = retry_while_locked(lambda: duckdb.connect(str(path), read_only=True), wait_seconds)
        _own_spill_folder(con, path.parent)  # many processes may read the file at once
    else:
        con = _open_for_writing(path, wait_seconds)
    limits.apply(con)
    if not read_only:
        con.execute(sql("schema"))
        store_columns = con.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_name = 'stores'"
        ).fetchall()
        if ("first_poll",) not in store_columns:
            con.execute(sql("upgrade_store_poll_span"))
    con.execute(sql("macros"))
    return con


@contextmanager
def database(
    path: Path | str,
    *,
    read_only: bool = False,
    wait_seconds: float = 0.0,
    limits: ResourceLimits | None = None,
) -> Iterator[duckdb.DuckDBPyConnection]:
    """``connect``, closed at the end of the block; running out of the limits inside it raises
    ResourceLimitError. DuckDB removes its spill files when a query fails and when it closes."""
    limits = limits or ResourceLimits.default()
    con = connect(path, read_only=read_only, wait_seconds=wait_seconds, limits=limits)
    try:
        with resource_errors(limits):
            yield con
    finally:
        con.close()
