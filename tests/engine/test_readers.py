"""A file held open between reads (engine/readers.py) never holds up a writer beyond the reads in
flight: real DuckDB files, and real writer processes going through engine/db.py's ``connect``
as every run does; killed writers leave nothing stuck."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import duckdb
import pytest

from storemon_pipeline.engine.db import WriterIntent, connect, database
from storemon_pipeline.engine.explain import TimelineBatches, explain_store
from storemon_pipeline.engine.readers import FileReader

PATIENCE = 60.0  # how long a test waits for something that must happen (never a measure)

WRITER = """
import sys
from storemon_pipeline.engine.db import connect
con = connect(sys.argv[1], wait_seconds=float(sys.argv[2]))
print("opened", flush=True)
con.execute("INSERT INTO marks VALUES (?)", [sys.argv[3]])
print("written", flush=True)
sys.stdin.readline()  # holds the file until told
con.close()
print("closed", flush=True)
"""


class Writer:
    """A process writing the file through ``connect`` (as a run does): opens it, inserts a mark,
    holds it until ``finish``."""

    def __init__(self, path: Path, mark: str, wait_seconds: float = 0.0) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-c", WRITER, str(path), str(wait_seconds), mark],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        for line in self.process.stdout:
            self.lines.append(line.strip())

    def has(self, line: str) -> bool:
        return line in self.lines

    def wait_for(self, line: str) -> None:
        wait_until(lambda: self.has(line) or self.process.poll() is not None)
        assert self.has(line), f"the writer never said {line!r}: {self.process.stderr.read()}"

    def finish(self) -> None:
        self.process.stdin.write("\n")
        self.process.stdin.flush()
        assert self.process.wait(PATIENCE) == 0, self.process.stderr.read()

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(PATIENCE)


def wait_until(condition: Callable[[], bool]) -> None:
    deadline = time.monotonic() + PATIENCE
    while not condition():
        assert time.monotonic() < deadline, "waited too long"
        time.sleep(0.01)


@pytest.fixture
def db(tmp_path: Path) -> Path:
    path = tmp_path / "storemon.duckdb"
    with database(path) as con:
        con.execute("CREATE TABLE marks (mark VARCHAR)")
    return path


def marks(reader: FileReader) -> list[str]:
    with reader.connection() as con:
        return [row[0] for row in con.execute("SELECT mark FROM marks ORDER BY mark").fetchall()]


@contextmanager
def reader_of(path: Path, wait_seconds: float = 10.0) -> Iterator[FileReader]:
    reader = FileReader(path, wait_seconds=wait_seconds)
    try:
        yield reader
    finally:
        reader.close()


def test_an_idle_reader_lets_a_writer_in_and_reads_what_it_wrote(db):
    """The reader holds the file between reads; a writer that would not wait for another
    writer (wait 0) still gets in, and the next read opens the file again and sees it."""
    with reader_of(db) as reader:
        assert marks(reader) == [] and marks(reader) == []
        assert reader.is_open and reader.opened == 1  # held between reads, opened once
        writer = Writer(db, "first")
        writer.wait_for("written")
        writer.finish()
        assert marks(reader) == ["first"]
        assert reader.opened == 2


def test_a_read_in_flight_finishes_then_the_writer_goes_first(db):
    """A writer waits for the read in flight (which is never cut), not for anything else;
    while it holds the file a read waits its time and fails as DuckDB's lock error (the API's
    503); once it is done, reads see what it wrote."""
    with reader_of(db, wait_seconds=0.5) as reader:
        with reader.connection() as con:
            writer = Writer(db, "second", wait_seconds=PATIENCE)
            wait_until(lambda: reader.yielding)  # the reader saw the writer announce itself
            # the read in flight goes on, on the open file; the writer cannot have it yet
            assert con.execute("SELECT count(*) FROM marks").fetchone() == (0,)
            assert not writer.has("opened")
        writer.wait_for("written")
        assert not reader.is_open
        with pytest.raises(duckdb.IOException, match="lock"), reader.connection():
            pass
        writer.finish()
        assert marks(reader) == ["second"]


def test_a_writer_killed_while_waiting_leaves_nothing_announced(db):
    with reader_of(db) as reader:
        with reader.connection() as con:
            writer = Writer(db, "never", wait_seconds=PATIENCE)
            wait_until(lambda: reader.yielding)
            writer.kill()
            con.execute("SELECT 1")
        intent = WriterIntent(db)
        try:
            assert not intent.announced()  # the kernel released its lock with its process
        finally:
            intent.close()
        assert marks(reader) == []


def test_a_writer_killed_while_writing_leaves_the_file_to_the_readers(db):
    """What it committed before it died is there; nothing holds the file."""
    with reader_of(db) as reader:
        assert marks(reader) == []
        writer = Writer(db, "committed")
        writer.wait_for("written")
        writer.kill()
        assert marks(reader) == ["committed"]
        with database(db) as con:  # and a writer after it gets in at once
            con.execute("INSERT INTO marks VALUES ('after')")
        assert marks(reader) == ["after", "committed"]


def test_a_file_replaced_under_its_name_is_read_anew(db, tmp_path):
    """As `storemon reshard` swaps files in: the reader lets go of the old one."""
    with reader_of(db) as reader:
        assert marks(reader) == []
        new = tmp_path / "new.duckdb"
        with database(new) as con:
            con.execute("CREATE TABLE marks AS SELECT 'new file' AS mark")
        os.replace(new, db)
        wait_until(lambda: not reader.is_open)
        assert marks(reader) == ["new file"]


def test_a_lent_file_is_not_held(db):
    """While lent (shards attached by another connection of the process), reads wait and the
    file is not held: a writer gets in at once."""
    with reader_of(db, wait_seconds=0.2) as reader:
        assert marks(reader) == []
        with reader.lent():
            assert not reader.is_open
            with pytest.raises(duckdb.IOException), reader.connection():
                pass
            con = connect(db)  # this process writes: nothing of the reader holds the file
            con.execute("INSERT INTO marks VALUES ('while lent')")
            con.close()
        assert marks(reader) == ["while lent"]


def test_timelines_asked_together_are_computed_together(sample_state):
    """Requests that arrive while the file is busy wait for one batch, which answers each
    exactly as a timeline computed alone."""
    path = sample_state / "storemon.duckdb"
    with database(path, read_only=True) as con:
        stores = [row[0] for row in con.execute(
            "SELECT store_id FROM stores ORDER BY store_id LIMIT 6").fetchall()]
        alone = {store: explain_store(con, store) for store in stores}
    with reader_of(path) as reader:
        batches = TimelineBatches(reader)
        found: dict[str, object] = {}

        def ask(store: str) -> None:
            found[store] = batches.timeline(store, None)

        threads = [threading.Thread(target=ask, args=(store,)) for store in stores]
        with reader.lent():  # the first request's batch waits for the file, the others queue
            threads[0].start()
            wait_until(lambda: batches.running)
            for thread in threads[1:]:
                thread.start()
            wait_until(lambda: batches.waiting == len(stores) - 1)
        for thread in threads:
            thread.join(PATIENCE)
        assert batches.batches == 2
        assert found == alone
        with pytest.raises(LookupError):
            batches.timeline("no-such-store", None)


def test_a_writer_of_the_same_process_waits_for_the_reader_too(db):
    """DuckDB refuses a second mode of a file within one process (a reader's read-only
    connection against a writable one): the writer announces itself and retries that too."""
    with reader_of(db) as reader:
        assert marks(reader) == [] and reader.is_open
        with database(db) as con:
            con.execute("INSERT INTO marks VALUES ('in process')")
        assert marks(reader) == ["in process"]
