"""Reading DuckDB files from a process that answers many requests (the API), without ever
holding up a writer.

DuckDB lets no process open a file for writing while another process holds it open, even
read-only. Opening a file for every request costs more than a store's timeline itself (about
25 ms on the sample), and whatever a connection has prepared (the time zones' offset pieces,
engine/windows.py) would be made again each time. A ``FileReader`` therefore keeps one
read-only connection to its file open between requests, and lets go of it as soon as a writer
announces itself (``engine/db.py``: every writable ``connect`` holds the file's
``WriterIntent`` while it tries to open it):

- its watcher tests the intent every ``poll_seconds``; when a writer is there, reads in flight
  finish, new ones wait, and the connection is closed once the last one is done: a writer
  waits for the reads in flight and a poll interval, never for an idle reader;
- while the writer holds the file, reads wait for it up to ``wait_seconds``, then raise
  ``duckdb.IOException`` (the API's 503); the next read after it opens the file again, and sees
  everything the writer committed, never half of it (DuckDB's own transactions);
- a writer that dies releases its intent and its lock with its process; a reader that dies
  releases its own. Nothing stale is left to be cleaned up.

Each request takes a cursor of the connection (its own DuckDB connection to the same database,
with its own temp tables); cursors are kept between requests, with what they prepared, until
the file is let go. A file replaced under its name (``storemon reshard``) is let go too.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import duckdb

from storemon_pipeline.engine.db import (
    ResourceLimits,
    WriterIntent,
    connect,
    is_lock_error,
    sql,
)
from storemon_pipeline.engine.history import ReportSource, report_source

POLL_SECONDS = 0.02  # how often an open reader tests whether a writer is waiting
RETRY_SECONDS = 0.05  # how often a read waiting for a writer tries the file again


class FileReader:
    """One DuckDB file, read-only, held open between reads and let go for writers."""

    def __init__(
        self,
        path: Path,
        *,
        wait_seconds: float,
        limits: ResourceLimits | None = None,
        threads: int | None = None,
        poll_seconds: float = POLL_SECONDS,
    ) -> None:
        self.path = Path(path)
        self.wait_seconds = wait_seconds
        self.limits = limits
        # DuckDB's threads for each query (None: the limits'); work over every store asks
        # for all of them while it runs (``connection(wide=True)``)
        self.threads = threads
        self.wide_threads = (limits.threads if limits else None) or os.cpu_count() or 1
        self._wide = 0
        self.poll_seconds = poll_seconds
        self._cond = threading.Condition()
        self._con: duckdb.DuckDBPyConnection | None = None
        self._file_id: tuple[int, int] | None = None
        self._idle: list[duckdb.DuckDBPyConnection] = []
        self._in_flight = 0
        self._writer_waiting = False  # or the file was replaced: let go when reads are done
        self._lent = 0
        self._closed = False
        self._intent: WriterIntent | None = None
        self.opened = 0  # how many times the file was opened (tests, the bench)

    @contextmanager
    def connection(
        self, *, wait_seconds: float | None = None, wide: bool = False
    ) -> Iterator[duckdb.DuckDBPyConnection]:
        """A cursor of the open file for one request. While a writer is waiting or writing,
        waits up to ``wait_seconds`` (default: the reader's) and then raises
        duckdb.IOException. ``wide``: work over every store, which may use all of DuckDB's
        threads while it runs, and leaves large temp tables: its cursor is closed after;
        else the cursor serves the next request, with what it prepared."""
        cursor = self._acquire(
            self.wait_seconds if wait_seconds is None else wait_seconds, wide
        )
        failed = False
        try:
            yield cursor
        except BaseException:
            failed = True
            raise
        finally:
            self._release(cursor, keep=not wide and not failed, wide=wide)

    @contextmanager
    def lent(self, *, wait_seconds: float | None = None) -> Iterator[None]:
        """The file let go for the block: another connection of this process may open it (an
        ATTACH of shards, engine/shards.py) without sharing this one's lock, which DuckDB
        holds per process (closing either would drop both). Reads wait meanwhile."""
        deadline = time.monotonic() + (self.wait_seconds if wait_seconds is None else wait_seconds)
        with self._cond:
            self._lent += 1
            try:
                while self._in_flight:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        raise duckdb.IOException(f"{self.path} is busy: reads did not finish")
                    self._cond.wait(remaining)
                self._close_connection()
            except BaseException:
                self._lent -= 1
                self._cond.notify_all()
                raise
        try:
            yield
        finally:
            with self._cond:
                self._lent -= 1
                self._cond.notify_all()

    def close(self) -> None:
        """Let go of the file for good (the reads in flight finish first)."""
        with self._cond:
            self._closed = True
            while self._in_flight:
                self._cond.wait()
            self._close_connection()
            if self._intent is not None:
                self._intent.close()
                self._intent = None
            self._cond.notify_all()

    @property
    def is_open(self) -> bool:
        """Whether the file is held open (between reads too)."""
        return self._con is not None

    @property
    def yielding(self) -> bool:
        """Whether a writer was seen waiting and the file is let go once reads are done."""
        return self._writer_waiting

    @property
    def _letting_go(self) -> bool:
        """No new read may start on the open connection (under the lock)."""
        return self._closed or self._lent > 0 or self._writer_waiting

    # --- inside -------------------------------------------------------------------------------

    def _acquire(self, wait_seconds: float, wide: bool = False) -> duckdb.DuckDBPyConnection:
        deadline = time.monotonic() + wait_seconds
        with self._cond:
            while True:
                if self._closed:
                    raise RuntimeError(f"the reader of {self.path} is closed")
                if not self._letting_go and (self._con is not None or self._open()):
                    break
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise duckdb.IOException(
                        f"{self.path} is held by a writer (could not set lock on file for "
                        f"{wait_seconds:g} s)"
                    )
                self._cond.wait(min(remaining, RETRY_SECONDS))
            self._in_flight += 1
            if wide:
                self._wide += 1
                self._set_threads()
            if self._idle:
                return self._idle.pop()
            cursor = self._con.cursor()
        try:
            cursor.execute(sql("macros"))  # temp objects are each cursor's own
        except BaseException:
            self._release(cursor, keep=False, wide=wide)
            raise
        return cursor

    def _release(
        self, cursor: duckdb.DuckDBPyConnection, keep: bool, wide: bool = False
    ) -> None:
        with self._cond:
            self._in_flight -= 1
            if wide:
                self._wide -= 1
                self._set_threads()
            if keep and self._con is not None and not self._letting_go:
                self._idle.append(cursor)
            else:
                cursor.close()
            if self._letting_go and not self._in_flight:
                self._close_connection()
            self._cond.notify_all()

    def _open(self) -> bool:
        """Open the file unless a writer is waiting or holds it (under the lock)."""
        if not self.path.exists():
            raise duckdb.IOException(f"{self.path} does not exist")
        if self._intent is None:
            self._intent = WriterIntent(self.path)
        if self._intent.announced():
            return False
        try:
            con = connect(self.path, read_only=True, limits=self.limits)
        except (duckdb.IOException, duckdb.ConnectionException) as exc:
            if is_lock_error(exc):
                return False
            raise
        self._con, self._file_id = con, _file_id(self.path)
        self._set_threads()
        self.opened += 1
        threading.Thread(
            target=self._watch, args=(con,), name=f"reader {self.path.name}", daemon=True
        ).start()
        return True

    def _set_threads(self) -> None:
        """DuckDB's threads for the queries running now (a setting of the whole database,
        under the lock)."""
        if self._con is not None and self.threads is not None:
            threads = self.wide_threads if self._wide else self.threads
            self._con.execute(f"SET threads = {int(threads)}")

    def _close_connection(self) -> None:
        """Close every cursor and the connection (under the lock, nothing in flight)."""
        for cursor in self._idle:
            cursor.close()
        self._idle.clear()
        if self._con is not None:
            self._con.close()
        self._con = self._file_id = None
        self._writer_waiting = False

    def _watch(self, con: duckdb.DuckDBPyConnection) -> None:
        """While ``con`` is the open connection: let go of it when a writer announces itself or
        the file was replaced."""
        while True:
            time.sleep(self.poll_seconds)
            with self._cond:
                if self._con is not con:
                    return
                if self._writer_waiting:
                    continue
                if self._intent.announced() or _file_id(self.path) != self._file_id:
                    self._writer_waiting = True
                    if not self._in_flight:
                        self._close_connection()
                    self._cond.notify_all()


def _file_id(path: Path) -> tuple[int, int] | None:
    try:
        found = os.stat(path)
    except FileNotFoundError:
        return None
    return found.st_dev, found.st_ino


class Readers:
    """The readers of a process: one per file, made on first use."""

    def __init__(
        self,
        *,
        wait_seconds: float,
        limits: ResourceLimits | None = None,
        threads: int | None = None,
    ) -> None:
        self.wait_seconds = wait_seconds
        self.limits = limits
        self.threads = threads
        self._readers: dict[Path, FileReader] = {}
        self._lock = threading.Lock()

    def reader(self, path: Path) -> FileReader:
        with self._lock:
            found = self._readers.get(path)
            if found is None:
                found = self._readers[path] = FileReader(
                    path, wait_seconds=self.wait_seconds, limits=self.limits,
                    threads=self.threads,
                )
            return found

    @contextmanager
    def connection(
        self, path: Path, *, wait_seconds: float | None = None, wide: bool = False
    ) -> Iterator[duckdb.DuckDBPyConnection]:
        """``FileReader.connection`` of the file's reader."""
        with self.reader(path).connection(wait_seconds=wait_seconds, wide=wide) as con:
            yield con

    @contextmanager
    def lent(
        self, paths: Sequence[Path], *, wait_seconds: float | None = None
    ) -> Iterator[None]:
        """``FileReader.lent`` of every file of ``paths``."""
        with ExitStack() as stack:
            for path in paths:
                stack.enter_context(self.reader(path).lent(wait_seconds=wait_seconds))
            yield

    def close(self) -> None:
        with self._lock:
            readers, self._readers = list(self._readers.values()), {}
        for reader in readers:
            reader.close()


@dataclass(frozen=True)
class _FileState:
    """What a file's directory entry says of its content: another write changes it."""

    signature: tuple
    read_at: float


class ReportSources:
    """``history.report_source`` of the history file, kept while the file is unchanged (its
    size, modification time and inode, and its write-ahead log's): a timeline asks for it on
    every request, and reading it opens the history file (about 30 ms on the sample). Kept at
    most ``max_age_seconds`` whatever the file says."""

    def __init__(self, path: Path, *, wait_seconds: float, max_age_seconds: float = 5.0) -> None:
        self.path = path
        self.wait_seconds = wait_seconds
        self.max_age_seconds = max_age_seconds
        self._lock = threading.Lock()
        self._found: dict[datetime | None, tuple[_FileState, ReportSource | None]] = {}

    def source(self, as_of: datetime | None) -> ReportSource | None:
        """The newest partition whose as-of is ``as_of`` (default: the newest partition)."""
        state = _FileState(self._signature(), time.monotonic())
        with self._lock:
            kept = self._found.get(as_of)
        if kept is not None:
            kept_state, found = kept
            if (kept_state.signature == state.signature
                    and state.read_at - kept_state.read_at < self.max_age_seconds):
                return found
        found = report_source(self.path, as_of, self.wait_seconds)
        with self._lock:
            if len(self._found) > 1024:
                self._found.clear()
            self._found[as_of] = (state, found)
        return found

    def _signature(self) -> tuple:
        def of(path: Path) -> tuple | None:
            try:
                found = os.stat(path)
            except FileNotFoundError:
                return None
            return found.st_ino, found.st_size, found.st_mtime_ns

        return of(self.path), of(self.path.with_name(self.path.name + ".wal"))
