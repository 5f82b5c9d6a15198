"""Small JSON files in the state folder that other processes read without opening DuckDB.

DuckDB lets one process hold the file, and runs write it for seconds at a time; the REST facade
and the Dagster sensors must answer meanwhile. So each run that changes what they need to know
leaves it in a JSON file, written to a temporary name and renamed (never seen half-written):

- ``latest_poll.json``: the newest poll instant and the data version after the last ingest;
- ``reports/<run id>.json``: beside each ``reports/<run id>.csv``, what that report is;
- ``reports/withheld/<run id>.json``: instead of it, when the report failed a blocking check
  (its CSV stays, to be looked into, but is never served).
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

from storemon_pipeline.engine.files import read_json, write_json_atomically
from storemon_pipeline.engine.instants import iso, parse_iso, utc_now

LATEST_POLL_FILE = "latest_poll.json"
WITHHELD = "withheld"


def write_latest_poll(
    state_dir: Path, latest_poll: datetime | None, data_version: str | None = None
) -> Path:
    return write_json_atomically(
        state_dir / LATEST_POLL_FILE,
        {"latest_poll": iso(latest_poll), "data_version": data_version, "updated": iso(utc_now())},
    )


def read_latest_poll(state_dir: Path) -> datetime | None:
    """The newest poll as of the last ingest; None if unknown."""
    payload = read_json(state_dir / LATEST_POLL_FILE)
    return None if payload is None else parse_iso(payload.get("latest_poll"))


def read_data_version(state_dir: Path) -> str | None:
    """The data version (ingest.data_version) as of the last ingest; None if unknown."""
    payload = read_json(state_dir / LATEST_POLL_FILE)
    return None if payload is None else payload.get("data_version")


def report_csv_path(reports_dir: Path, run_id: str) -> Path:
    return reports_dir / f"{run_id}.csv"


def report_sidecar_path(reports_dir: Path, run_id: str) -> Path:
    return reports_dir / f"{run_id}.json"


def write_report_sidecar(
    reports_dir: Path,
    run_id: str,
    *,
    as_of: datetime,
    stores: int,
    partition: str | None,
    latest_poll: datetime | None,
    data_version: str | None = None,
) -> Path:
    """Written after the CSV: its presence means the CSV is complete."""
    return write_json_atomically(
        report_sidecar_path(reports_dir, run_id),
        {
            "run_id": run_id,
            "csv": report_csv_path(reports_dir, run_id).name,
            "as_of": iso(as_of),
            "stores": stores,
            "partition": partition,
            "latest_poll": iso(latest_poll),
            "data_version": data_version,
            "created": iso(utc_now()),
        },
    )


def read_report_sidecar(reports_dir: Path, run_id: str) -> dict[str, Any] | None:
    return read_json(report_sidecar_path(reports_dir, run_id))


def withheld_report_path(reports_dir: Path, run_id: str) -> Path:
    return reports_dir / WITHHELD / f"{run_id}.json"


def withhold_report(
    reports_dir: Path, run_id: str, check: str, description: str
) -> Path | None:
    """A report that failed a blocking check is not complete: its sidecar moves to
    ``reports/withheld/``, with the check and what it found, so nothing serves the CSV (even
    while Dagster cannot be asked). None when the run made no report (a run of checks only)."""
    sidecar = report_sidecar_path(reports_dir, run_id)
    target = withheld_report_path(reports_dir, run_id)
    payload = read_json(target) or read_json(sidecar)
    if payload is None:
        return None
    failed = [f for f in payload.get("failed_checks", []) if f.get("check") != check]
    payload["failed_checks"] = [*failed, {"check": check, "description": description}]
    write_json_atomically(target, payload)
    sidecar.unlink(missing_ok=True)
    return target


def read_withheld_report(reports_dir: Path, run_id: str) -> dict[str, Any] | None:
    return read_json(withheld_report_path(reports_dir, run_id))
