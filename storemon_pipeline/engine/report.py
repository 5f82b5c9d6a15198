"""The uptime report as of an instant (docs/semantics.md §2), computed set-based in DuckDB."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import duckdb
import pandas as pd

from storemon_pipeline.engine.db import sql
from storemon_pipeline.engine.files import atomic_target
from storemon_pipeline.engine.instants import as_naive_utc
from storemon_pipeline.engine.windows import ensure_business_windows

REPORT_COLUMNS = [
    "store_id",
    "uptime_last_hour",
    "uptime_last_day",
    "uptime_last_week",
    "downtime_last_hour",
    "downtime_last_day",
    "downtime_last_week",
]
MINUTE_US = 60_000_000
HOUR_US = 3_600_000_000


class NoPollsError(LookupError):
    """There is nothing to report on: no poll at or before the as-of instant."""


def latest_poll(con: duckdb.DuckDBPyConnection) -> datetime | None:
    return con.execute("SELECT max(ts) FROM polls").fetchall()[0][0]


def resolve_as_of(con: duckdb.DuckDBPyConnection, as_of: datetime | None) -> datetime:
    if as_of is None:
        as_of = latest_poll(con)
        if as_of is None:
            raise NoPollsError("no polls are loaded yet: ingest a store-status file first")
    return as_naive_utc(as_of)


def compute_report(
    con: duckdb.DuckDBPyConnection,
    as_of: datetime | None = None,
    store_ids: Sequence[str] | None = None,
) -> datetime:
    """Fill the temp table ``report_result`` (microseconds per store); returns the as-of used.

    ``store_ids`` limits the report to those stores (a shard) and gives exactly their rows of
    the full report.
    """
    as_of = resolve_as_of(con, as_of)
    ensure_business_windows(con, as_of)
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE report_result AS {sql('report')}",
        {"as_of": as_of, "store_ids": None if store_ids is None else list(store_ids)},
    )
    return as_of


def result_frame(con: duckdb.DuckDBPyConnection) -> pd.DataFrame:
    """``report_result`` with unrounded values (minutes for the hour, hours for day and week)."""
    micros = con.execute("SELECT * FROM report_result ORDER BY store_id").df()
    frame = pd.DataFrame({"store_id": micros["store_id"].astype(str)})
    for period, unit in (("hour", MINUTE_US), ("day", HOUR_US), ("week", HOUR_US)):
        uptime = micros[f"uptime_{period}_us"]
        business = micros[f"business_{period}_us"]
        frame[f"uptime_last_{period}"] = uptime / unit
        frame[f"downtime_last_{period}"] = (business - uptime) / unit
    return frame[REPORT_COLUMNS]


def report_frame(
    con: duckdb.DuckDBPyConnection,
    as_of: datetime | None = None,
    store_ids: Sequence[str] | None = None,
) -> pd.DataFrame:
    """The report with unrounded values (minutes for the hour, hours for day and week)."""
    compute_report(con, as_of, store_ids)
    return result_frame(con)


@dataclass(frozen=True)
class ReportSummary:
    stores: int
    stores_with_downtime_last_week: int
    uptime_share_last_week: float | None  # of all business time; None without business time


def result_summary(con: duckdb.DuckDBPyConnection) -> ReportSummary:
    stores, with_downtime, share = con.execute(
        "SELECT count(*), count(*) FILTER (WHERE business_week_us > uptime_week_us), "
        "sum(uptime_week_us) / nullif(sum(business_week_us), 0) FROM report_result"
    ).fetchall()[0]
    return ReportSummary(stores, with_downtime, None if share is None else float(share))


def most_downtime(con: duckdb.DuckDBPyConnection, limit: int = 10) -> pd.DataFrame:
    """The stores of ``report_result`` with the most downtime last week (rounded, for people)."""
    return con.execute(
        """
        SELECT store_id,
               round((business_week_us - uptime_week_us) / 3.6e9, 2) AS "downtime last week (h)",
               round(uptime_week_us / 3.6e9, 2) AS "uptime last week (h)",
               round((business_day_us - uptime_day_us) / 3.6e9, 2) AS "downtime last day (h)",
               round((business_hour_us - uptime_hour_us) / 6e7, 2) AS "downtime last hour (min)"
        FROM report_result
        WHERE business_week_us > uptime_week_us
        ORDER BY business_week_us - uptime_week_us DESC, store_id
        LIMIT ?
        """,
        [limit],
    ).df()


@dataclass(frozen=True)
class WrittenReport:
    path: Path
    as_of: datetime
    stores: int


def export_report_csv(con: duckdb.DuckDBPyConnection, out_path: Path | str) -> Path:
    """``report_result`` as the CSV of docs/semantics.md §2.10: exact header, one row per store
    sorted by store_id, 2 decimals."""
    out_path = Path(out_path)
    with atomic_target(out_path) as temporary:
        con.execute(f"COPY ({sql('report_csv')}) TO '{temporary}' (HEADER, DELIMITER ',')")
    return out_path


def write_report_csv(
    con: duckdb.DuckDBPyConnection,
    out_path: Path | str,
    as_of: datetime | None = None,
    store_ids: Sequence[str] | None = None,
) -> WrittenReport:
    """Compute the report and write its CSV."""
    as_of = compute_report(con, as_of, store_ids)
    path = export_report_csv(con, out_path)
    return WrittenReport(path, as_of, result_summary(con).stores)
