"""Loading the four CSV feeds into DuckDB.

DuckDB does the parsing and validation (set-based SQL over whole files); Python only recognises
each file's feed by its header, keeps the manifest that makes loading idempotent, and scans each
file's bytes once (engine/textscan.py) so that DuckDB is never given a line it cannot take.
"""

from __future__ import annotations

import hashlib
import re
import tempfile
import zoneinfo
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path

import duckdb
import pandas as pd

from storemon_pipeline.engine.db import run_script, sql
from storemon_pipeline.engine.files import atomic_target, free_disk_bytes
from storemon_pipeline.engine.instants import utc_now
from storemon_pipeline.engine.shards import Shard
from storemon_pipeline.engine.textscan import (
    MAX_LINE_BYTES,
    FileScan,
    TextTooLargeError,
    UnreadableFileError,
    header_names,
    sanitise,
)

POLLS, HOURS, TIMEZONES, SPECIAL = "polls", "business_hours", "timezones", "special_hours"

# Normalised header columns -> the SQL parameter naming each column's position.
FEED_HEADERS: dict[str, dict[str, str]] = {
    POLLS: {"store_id": "store_id_pos", "status": "status_pos", "timestamp_utc": "timestamp_pos"},
    HOURS: {
        "store_id": "store_id_pos",
        "dayofweek": "day_pos",
        "start_time_local": "start_pos",
        "end_time_local": "end_pos",
    },
    TIMEZONES: {"store_id": "store_id_pos", "timezone_str": "timezone_pos"},
    SPECIAL: {
        "store_id": "store_id_pos",
        "date": "date_pos",
        "start_time_local": "start_pos",
        "end_time_local": "end_pos",
    },
}
# Columns a feed's header may have besides its own; a missing one is at position 0 (no cell).
OPTIONAL_HEADERS: dict[str, dict[str, str]] = {SPECIAL: {"reason": "reason_pos"}}
# The check query of each feed (engine/sql/ingest_check_<name>.sql).
CHECK_QUERIES = {
    POLLS: "ingest_check_polls",
    HOURS: "ingest_check_hours",
    TIMEZONES: "ingest_check_timezones",
    SPECIAL: "ingest_check_special_hours",
}
HEADER_ALIASES = {"day": "dayofweek"}
# What a store id may be (docs/semantics.md §1.1): text, never parsed as a number.
STORE_ID_PATTERN = r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}"
CSV_SUFFIXES = (".csv", ".csv.gz")
# The instants a poll may have (docs/semantics.md §1.3): a report, its week and its look-back
# are computed and printed for any of them. Outside: invalid_timestamp.
FIRST_VALID_INSTANT = datetime(1970, 1, 1)
END_VALID_INSTANT = datetime(2100, 1, 1)
# A poll later than the ingest's clock plus this is a device's wrong clock: future_timestamp.
DEFAULT_MAX_CLOCK_SKEW = timedelta(minutes=60)


@dataclass
class FileResult:
    """What happened to one file; printed by the CLI and kept as Dagster metadata."""

    file: str
    feed: str | None
    status: str  # loaded | skipped (already loaded) | refused (unknown header, unreadable)
    rows_read: int = 0
    rows_loaded: int = 0
    rows_duplicate: int = 0
    rejected: dict[str, int] = field(default_factory=dict)
    message: str = ""
    poll_hours: list[datetime] = field(default_factory=list)  # UTC hours its polls fall in

    @property
    def rows_rejected(self) -> int:
        return sum(self.rejected.values())

    def summary(self) -> str:
        if self.status != "loaded":
            return f"{self.file}: {self.status} — {self.message}"
        reasons = ", ".join(f"{n} {reason}" for reason, n in sorted(self.rejected.items()))
        return (
            f"{self.file}: {self.feed}: {self.rows_read} rows, {self.rows_loaded} loaded, "
            f"{self.rows_duplicate} duplicate, {self.rows_rejected} rejected"
            + (f" ({reasons})" if reasons else "")
        )


def is_valid_store_id(text: str) -> bool:
    """Whether the ingest would accept this store id."""
    return re.fullmatch(STORE_ID_PATTERN, text) is not None


class UnknownFeedError(ValueError):
    """A file whose header is none of the four feeds."""


def csv_files(paths: Iterable[Path | str]) -> list[Path]:
    """The CSV files named, folders expanded to their CSV files in name order."""
    files: list[Path] = []
    for path in map(Path, paths):
        if path.is_dir():
            files.extend(
                sorted(p for p in path.iterdir() if p.is_file() and p.name.endswith(CSV_SUFFIXES))
            )
        elif path.is_file():
            files.append(path)
        else:
            raise FileNotFoundError(f"no such file or folder: {path}")
    return files


def read_header(path: Path) -> list[str]:
    """The column names of a file's first line ([] if it has none a feed could have)."""
    with FileScan(path) as scan:
        return header_names(scan.first_line())


def recognise_feed(header: list[str]) -> tuple[str, dict[str, int]]:
    """The feed a header belongs to and the 1-based position of each of its columns."""
    names = [HEADER_ALIASES.get(name, name) for name in header]
    for feed, required in FEED_HEADERS.items():
        optional = OPTIONAL_HEADERS.get(feed, {})
        extra = set(names) - set(required)
        if set(required) <= set(names) and extra <= set(optional) and len(set(names)) == len(names):
            columns = required | optional
            positions = {param: 0 for param in optional.values()}
            positions |= {columns[name]: names.index(name) + 1 for name in names}
            return feed, positions | {"field_count": len(names)}
    expected = " | ".join(
        ",".join([*columns, *(f"[{name}]" for name in OPTIONAL_HEADERS.get(feed, {}))])
        for feed, columns in FEED_HEADERS.items()
    )
    shown = ",".join(header)
    shown = shown if len(shown) <= 200 else shown[:200] + "…"  # a garbage header is long
    raise UnknownFeedError(
        f"unknown header {shown!r}: expected one of {expected} "
        "(the day column may also be called 'day')"
    )


def file_sha256(path: Path) -> str:
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def already_loaded(con: duckdb.DuckDBPyConnection, feed: str, sha: str) -> bool:
    """Polls files load once ever; a snapshot is a no-op only if it is the current one."""
    if feed == POLLS:
        query = "SELECT count(*) FROM ingest_manifest WHERE feed = ? AND file_sha256 = ?"
        return con.execute(query, [feed, sha]).fetchone()[0] > 0
    current = con.execute(
        "SELECT file_sha256 FROM ingest_manifest WHERE feed = ? ORDER BY loaded_at DESC LIMIT 1",
        [feed],
    ).fetchone()
    return current is not None and current[0] == sha


def _check_rows(
    con: duckdb.DuckDBPyConnection,
    feed: str,
    path: Path,
    positions: dict[str, int],
    not_after: datetime,
) -> None:
    """Stage the file's rows in ``ingest_checked``, each valid or with its reason. The file is
    UTF-8 with LF or CRLF line ends and no line DuckDB cannot take (engine/textscan.py); a poll
    after ``not_after`` is in the future."""
    params: dict[str, object] = {
        "path": str(path),
        "encoding": "utf-8",
        "store_id_pattern": STORE_ID_PATTERN,
        **positions,
    }
    if feed == POLLS:
        params |= {
            "first_valid_ts": FIRST_VALID_INSTANT,
            "end_valid_ts": END_VALID_INSTANT,
            "not_after": not_after,
        }
    con.execute(sql(CHECK_QUERIES[feed]), params)
    run_script(con, "ingest_number_lines")


def _check_sanitised(
    con: duckdb.DuckDBPyConnection, file: RecognisedFile, max_line_bytes: int, not_after: datetime
) -> None:
    """``_check_rows`` on a copy of a file with hostile lines: the copy's lines (its hostile
    lines blank), then the hostile lines themselves, each rejected with its reason."""
    with tempfile.TemporaryDirectory(prefix="storemon-sanitised-") as folder:
        copy = sanitise(Path(file.path), Path(folder), max_line_bytes)
        _check_rows(con, file.feed, copy.text, file.positions, not_after)
        con.execute(sql("ingest_hostile_lines"), {"path": str(copy.hostile)})


def _ensure_known_timezones(con: duckdb.DuckDBPyConnection) -> None:
    """The IANA names this Python knows, for validating the time-zone feed in SQL."""
    con.execute(
        "CREATE TEMP TABLE IF NOT EXISTS known_timezones AS "
        "SELECT unnest(?::VARCHAR[]) AS timezone",
        [sorted(zoneinfo.available_timezones())],
    )


# The columns of a snapshot's table that reports read, as the check stages them: a store whose
# rows of these differ has other reports (the free-text reason of a special date changes none).
SNAPSHOT_COLUMNS = {
    HOURS: "store_id, day_of_week, start_sec, end_sec",
    TIMEZONES: "store_id, timezone",
    SPECIAL: "store_id, local_date, start_sec, end_sec",
}
# The staged columns a snapshot's table keeps besides those.
SNAPSHOT_EXTRA_COLUMNS = {SPECIAL: ", reason_text"}


def _load_checked_rows(con: duckdb.DuckDBPyConnection, feed: str) -> int:
    """Move the valid staged rows into the feed's table; returns how many rows are new (for a
    snapshot: how many it holds)."""
    if feed == POLLS:
        before = con.execute("SELECT count(*) FROM polls").fetchone()[0]
        con.execute(sql("ingest_merge_polls"))
        return con.execute("SELECT count(*) FROM polls").fetchone()[0] - before
    # which polls are in hours changes with any snapshot, and so may the stored reports; the
    # stored windows are built again by the next report of every store
    con.execute("DELETE FROM search_memo; DELETE FROM business_windows_span")
    columns = SNAPSHOT_COLUMNS[feed]
    con.execute(sql("ingest_changed_snapshot").format(table=feed, columns=columns))
    con.execute(f"DELETE FROM {feed}")
    stored = columns + SNAPSHOT_EXTRA_COLUMNS.get(feed, "")
    # in store order: one store's rows (a timeline, a chunk of stores) lie in few row groups,
    # which DuckDB finds by their min/max instead of reading the whole table
    con.execute(
        f"INSERT INTO {feed} SELECT DISTINCT {stored} FROM ingest_checked WHERE reason IS NULL "
        "ORDER BY store_id"
    )
    return con.execute(f"SELECT count(*) FROM {feed}").fetchone()[0]


@dataclass(frozen=True)
class IngestGuards:
    """Files refused whole, before anything of them is read: too large, or too little room;
    and the rows rejected for what no valid row has: a line too long, a poll in the future."""

    max_file_bytes: int
    min_free_bytes: int
    disk_of: Path  # the folder whose disk must keep min_free_bytes free
    max_line_bytes: int = MAX_LINE_BYTES
    max_clock_skew: timedelta = DEFAULT_MAX_CLOCK_SKEW

    def refusal(self, path: Path) -> str | None:
        size = path.stat().st_size
        if size > self.max_file_bytes:
            return (
                f"the file has {size / 2**20:,.0f} MB, more than STOREMON_MAX_FILE_MB="
                f"{self.max_file_bytes / 2**20:.10g}: split it, or raise the limit"
            )
        free = free_disk_bytes(self.disk_of)
        if free < self.min_free_bytes + size:
            margin = self.min_free_bytes / 2**20
            return (
                f"the state folder's disk has {free / 2**20:,.0f} MB free, less than this file "
                f"and the margin STOREMON_MIN_FREE_DISK_MB={margin:.10g}: free some space first"
            )
        return None


@dataclass(frozen=True)
class RecognisedFile:
    """A file whose feed is known, by name and content."""

    path: str
    feed: str
    sha256: str
    positions: dict[str, int]
    clean: bool = True  # DuckDB may read it as it is (else a sanitised copy, textscan.py)


def _max_line_bytes(guards: IngestGuards | None) -> int:
    return MAX_LINE_BYTES if guards is None else guards.max_line_bytes


def _not_after(guards: IngestGuards | None) -> datetime:
    """The latest poll the ingest accepts now: its wall clock plus the allowed skew."""
    return utc_now() + (DEFAULT_MAX_CLOCK_SKEW if guards is None else guards.max_clock_skew)


def recognise_file(path: Path, guards: IngestGuards | None = None) -> RecognisedFile | FileResult:
    """The file's feed, or the result of refusing it (too large, no room, unknown header,
    unreadable). One read of the file: its header, its SHA-256 and whether it is clean."""
    name = str(path)
    try:
        refusal = None if guards is None else guards.refusal(path)
        if refusal is not None:
            return FileResult(name, None, "refused", message=refusal)
        max_text = None if guards is None else guards.max_file_bytes
        with FileScan(path, _max_line_bytes(guards), max_text) as scan:
            feed, positions = recognise_feed(header_names(scan.first_line()))
            found = scan.finish()
    except UnknownFeedError as exc:
        return FileResult(name, None, "refused", message=str(exc))
    except TextTooLargeError as exc:
        limit = exc.text_bytes / 2**20
        message = (
            f"its text has more than STOREMON_MAX_FILE_MB={limit:.10g} MB once decompressed: "
            "split it, or raise the limit"
        )
        return FileResult(name, None, "refused", message=message)
    except (OSError, UnreadableFileError) as exc:  # e.g. a .gz name on something not gzip
        return FileResult(name, None, "refused", message=f"cannot be read: {exc}")
    return RecognisedFile(name, feed, found.sha256, positions, found.clean)


def check_file(
    con: duckdb.DuckDBPyConnection, file: RecognisedFile, guards: IngestGuards | None = None
) -> FileResult | None:
    """Stage the file's rows in the temp table ``ingest_checked``, each valid or with its
    reason; the result of refusing the file if it cannot be read after all."""
    if file.feed == TIMEZONES:
        _ensure_known_timezones(con)
    not_after = _not_after(guards)
    try:
        if file.clean:
            _check_rows(con, file.feed, Path(file.path), file.positions, not_after)
        else:
            _check_sanitised(con, file, _max_line_bytes(guards), not_after)
    except (duckdb.InvalidInputException, duckdb.IOException) as exc:
        reason = str(exc).strip().splitlines()[0]
        return FileResult(
            file.path, file.feed, "refused", message=f"cannot be read as CSV text: {reason}"
        )
    except (OSError, UnreadableFileError) as exc:  # changed or gone since it was recognised
        return FileResult(file.path, file.feed, "refused", message=f"cannot be read: {exc}")
    return None


def load_checked(con: duckdb.DuckDBPyConnection, file: RecognisedFile) -> FileResult:
    """Load the rows staged in ``ingest_checked`` in one transaction: the valid rows, the
    rejected rows and the manifest row."""
    feed, name, sha = file.feed, file.path, file.sha256
    rows_read, rows_valid = con.execute(
        "SELECT count(*), count(*) FILTER (WHERE reason IS NULL) FROM ingest_checked"
    ).fetchone()
    rejected = dict(
        con.execute(
            "SELECT reason, count(*) FROM ingest_checked WHERE reason IS NOT NULL "
            "GROUP BY reason ORDER BY reason"
        ).fetchall()
    )
    loaded_at = utc_now()
    con.begin()
    try:
        con.execute(
            "INSERT INTO quarantine SELECT ?, ?, ?, line, raw, reason, ? "
            "FROM ingest_checked WHERE reason IS NOT NULL",
            [feed, name, sha, loaded_at],
        )
        rows_loaded = _load_checked_rows(con, feed)
        # a snapshot stores each distinct valid row once: the others are duplicates, as polls
        rows_duplicate = rows_valid - rows_loaded
        poll_hours = [
            row[0]
            for row in con.execute(
                "SELECT DISTINCT date_trunc('hour', ts) FROM changed_polls ORDER BY 1"
            ).fetchall()
        ] if feed == POLLS else []
        con.execute(
            "INSERT INTO ingest_manifest VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            [sha, feed, name, loaded_at, rows_read, rows_loaded, rows_duplicate,
             rows_read - rows_valid],
        )
        con.commit()
    except BaseException:
        con.rollback()
        raise
    finally:
        for staging in ("ingest_checked", "incoming_stores", "incoming_polls", "changed_polls",
                        "unsettled_stores", "snapshot_changed_stores"):
            con.execute(f"DROP TABLE IF EXISTS {staging}")
    return FileResult(
        name, feed, "loaded", rows_read, rows_loaded, rows_duplicate, rejected,
        poll_hours=poll_hours,
    )


def ingest_file(
    con: duckdb.DuckDBPyConnection, path: Path, guards: IngestGuards | None = None
) -> FileResult:
    """Load one file in one transaction: its valid rows, its rejected rows and its manifest
    row. Staging happens in temporary tables; only the writes share the transaction."""
    file = recognise_file(path, guards)
    if isinstance(file, FileResult):
        return file
    if already_loaded(con, file.feed, file.sha256):
        return FileResult(file.path, file.feed, "skipped", message="this content is already loaded")
    return check_file(con, file, guards) or load_checked(con, file)


@dataclass(frozen=True)
class StagedFile:
    """A file checked once and split by shard (docs/semantics.md §2.14): ``<folder>/<k>.parquet``
    holds shard k's staged rows; or the result of refusing it."""

    file: RecognisedFile | None
    folder: str | None
    refused: FileResult | None = None
    order: int = 0  # its place in the list of files to load (a later snapshot wins)


def stage_file(
    con: duckdb.DuckDBPyConnection,
    path: Path,
    staging_dir: Path,
    shards: int,
    guards: IngestGuards | None = None,
    order: int = 0,
) -> StagedFile:
    """Check a file once and leave each shard's part of its rows as Parquet, for ``load_staged``
    (every shard then loads only its part, without parsing the file again). A valid row goes
    with its store, a rejected row (whose store id may be missing or wrong) with its place in
    the file."""
    file = recognise_file(path, guards)
    if isinstance(file, FileResult):
        return StagedFile(None, None, file, order)
    refused = check_file(con, file, guards)
    if refused is not None:
        return StagedFile(None, None, refused, order)
    folder = staging_dir / file.sha256
    folder.mkdir(parents=True, exist_ok=True)
    con.execute(
        "CREATE OR REPLACE TEMP TABLE staged_rows AS SELECT *, CASE WHEN reason IS NULL "
        "THEN shard_of(store_id, $shards) ELSE shard_of($sha || ':' || line, $shards) END AS shard "
        "FROM ingest_checked",
        {"shards": shards, "sha": file.sha256},
    )
    for shard in range(shards):
        with atomic_target(folder / f"{shard}.parquet") as temporary:
            con.execute(
                f"COPY (SELECT * EXCLUDE (shard) FROM staged_rows WHERE shard = {shard}) "
                f"TO '{temporary}' (FORMAT parquet)"
            )
    for staging in ("ingest_checked", "staged_rows"):
        con.execute(f"DROP TABLE IF EXISTS {staging}")
    return StagedFile(file, str(folder), order=order)


def load_staged(
    con: duckdb.DuckDBPyConnection, staged: StagedFile, shard: Shard
) -> FileResult:
    """Load shard ``shard``'s part of a staged file into its database (a file loads once per
    shard: each shard's manifest records it)."""
    if staged.file is None:
        return staged.refused
    file = staged.file
    if already_loaded(con, file.feed, file.sha256):
        return FileResult(file.path, file.feed, "skipped", message="this content is already loaded")
    part = Path(staged.folder) / f"{shard.index}.parquet"
    con.execute(f"CREATE OR REPLACE TEMP TABLE ingest_checked AS SELECT * FROM '{part}'")
    return load_checked(con, file)


def ingest_paths(
    con: duckdb.DuckDBPyConnection,
    paths: Iterable[Path | str],
    progress: Callable[[FileResult], None] | None = None,
    guards: IngestGuards | None = None,
) -> list[FileResult]:
    """Ingest files and folders in order; a refused file loads nothing and the others still load."""
    results = []
    for path in csv_files(paths):
        result = ingest_file(con, path, guards)
        if progress is not None:
            progress(result)
        results.append(result)
    return results


def merge_shard_results(per_shard: Sequence[Sequence[FileResult]]) -> list[FileResult]:
    """One result per file from the results of every shard (each loaded its part of the same
    files, in the same order): the counts added up, as if one database had loaded them."""
    merged = []
    for parts in zip(*per_shard, strict=True):
        statuses = {part.status for part in parts}
        status = next(s for s in ("refused", "loaded", "skipped") if s in statuses)
        rejected: dict[str, int] = {}
        for part in parts:
            for reason, n in part.rejected.items():
                rejected[reason] = rejected.get(reason, 0) + n
        merged.append(
            FileResult(
                parts[0].file,
                next((p.feed for p in parts if p.feed), None),
                status,
                sum(p.rows_read for p in parts),
                sum(p.rows_loaded for p in parts),
                sum(p.rows_duplicate for p in parts),
                dict(sorted(rejected.items())),
                next((p.message for p in parts if p.status == status), ""),
                sorted({hour for p in parts for hour in p.poll_hours}),
            )
        )
    return merged


def data_version(con: duckdb.DuckDBPyConnection) -> str:
    """Names what is loaded: it changes with every file that loads (and only then), so two
    reports for the same as-of made under the same version are the same report."""
    count, last = con.execute(
        "SELECT count(*), max(loaded_at) FROM ingest_manifest"
    ).fetchone()
    return hashlib.sha256(f"{count}|{last}".encode()).hexdigest()[:16]


def files_loaded(con: duckdb.DuckDBPyConnection) -> int:
    """How many files were ever loaded (0: an empty state)."""
    return con.execute("SELECT count(*) FROM ingest_manifest").fetchone()[0]


def drop_expired_polls(con: duckdb.DuckDBPyConnection, keep_before_latest: timedelta) -> int:
    """Retention: delete the polls older than ``keep_before_latest`` before the latest poll;
    returns how many. Stores left without polls are forgotten (a report then treats them as
    never polled); the others' first poll moves up."""
    latest = con.execute("SELECT max(last_poll) FROM stores").fetchone()[0]
    if latest is None:
        return 0
    cutoff = latest - keep_before_latest
    con.begin()
    try:
        dropped = con.execute(
            "DELETE FROM polls WHERE ts < ?", [cutoff]
        ).fetchone()[0]
        if dropped:
            con.execute(
                """
                UPDATE stores SET first_poll = spans.first_poll
                FROM (
                    SELECT store_key, min(ts) AS first_poll
                    FROM polls
                    WHERE store_key IN (SELECT store_key FROM stores WHERE first_poll < $cutoff)
                    GROUP BY store_key
                ) AS spans
                WHERE stores.store_key = spans.store_key
                """,
                {"cutoff": cutoff},
            )
            con.execute("DELETE FROM stores WHERE first_poll < ?", [cutoff])
            # a store that arrives later may take a key of those dropped: the stored windows
            # are not its
            con.execute(
                "UPDATE business_windows_span SET stores_through = least(stores_through, "
                "(SELECT coalesce(max(store_key), 0) FROM stores))"
            )
            con.execute(
                "DELETE FROM search_memo WHERE last_ts < $cutoff OR last_in_hours_ts < $cutoff "
                "OR store_key NOT IN (SELECT store_key FROM stores)",
                {"cutoff": cutoff},
            )
            run_script(con, "retention_settled_days", {"cutoff": cutoff})
        con.commit()
    except BaseException:
        con.rollback()
        raise
    return dropped


@dataclass(frozen=True)
class FeedTables:
    """What the feed tables hold now (for the ingest's metadata and summaries)."""

    polls: int
    poll_stores: int
    first_poll: datetime | None
    latest_poll: datetime | None
    hours_rows: int
    hours_stores: int
    special_rows: int
    special_stores: int
    special_store_dates: int  # (store, local date) pairs with special hours
    closed_store_dates: int  # of those, closed all day
    special_dates_span: tuple[date | None, date | None]
    next_special_dates: pd.DataFrame  # the first ten from the latest poll's date on
    timezone_rows: int
    timezone_stores: int
    distinct_timezones: int
    quarantined: int
    rejected_by_reason: dict[str, int]  # "feed: reason" -> rows, all time
    rejected_sample: pd.DataFrame  # the newest rejected rows of the files given


def feed_tables(con: duckdb.DuckDBPyConnection, files: list[str]) -> FeedTables:
    polls, poll_stores, first_poll, latest = con.execute(
        "SELECT count(*), count(DISTINCT store_key), min(ts), max(ts) FROM polls"
    ).fetchone()
    hours, hours_stores = con.execute(
        "SELECT count(*), count(DISTINCT store_id) FROM business_hours"
    ).fetchone()
    special = con.execute(
        """
        WITH store_dates AS (
            SELECT store_id, local_date, bool_and(start_sec IS NULL) AS closed
            FROM special_hours
            GROUP BY store_id, local_date
        )
        SELECT (SELECT count(*) FROM special_hours), count(DISTINCT store_id), count(*),
               count(*) FILTER (WHERE closed), min(local_date), max(local_date)
        FROM store_dates
        """
    ).fetchone()
    next_special = con.execute(
        """
        WITH store_dates AS (
            SELECT store_id, local_date, bool_and(start_sec IS NULL) AS closed,
                   string_agg(DISTINCT reason, '; ') AS reasons
            FROM special_hours
            WHERE local_date >= (SELECT max(last_poll)::DATE FROM stores)
            GROUP BY store_id, local_date
        )
        SELECT strftime(local_date, '%Y-%m-%d') AS date, count(*) AS stores,
               count(*) FILTER (WHERE closed) AS closed,
               string_agg(DISTINCT reasons, '; ') AS reasons
        FROM store_dates
        GROUP BY local_date
        ORDER BY local_date
        LIMIT 10
        """
    ).df()
    zones, zone_stores, zone_names = con.execute(
        "SELECT count(*), count(DISTINCT store_id), count(DISTINCT timezone) FROM timezones"
    ).fetchone()
    quarantined = con.execute("SELECT count(*) FROM quarantine").fetchone()[0]
    by_reason = dict(
        con.execute(
            "SELECT feed || ': ' || reason, count(*) FROM quarantine GROUP BY ALL ORDER BY 1"
        ).fetchall()
    )
    sample = con.execute(
        """
        SELECT feed, regexp_extract(file, '[^/]*$') AS file, line, reason, raw
        FROM quarantine
        WHERE file IN (SELECT unnest($files::VARCHAR[]))
        ORDER BY loaded_at DESC, line
        LIMIT 10
        """,
        {"files": files},
    ).df()
    return FeedTables(
        polls, poll_stores, first_poll, latest, hours, hours_stores, *special[:4],
        (special[4], special[5]), next_special, zones, zone_stores, zone_names, quarantined,
        by_reason, sample,
    )
