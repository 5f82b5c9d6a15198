"""Finished reports on disk: ``$STOREMON_HOME/reports/<run id>.csv`` and its sidecar ``.json``.

The Dagster run writes the CSV (atomically), then the sidecar: a sidecar next to its CSV means
the report is complete and will never change. So these files are served without asking
Dagster, which keeps finished reports downloadable while Dagster is down.

A report id may also be an alias (``reports/aliases/<id>.json``) of another report: the answer
to a trigger when the data has not changed since a finished report, or while an equivalent one
is running. The alias stays as long as the state folder does.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from storemon_api.ids import parse_report_id
from storemon_pipeline.engine.files import read_json, write_json_atomically
from storemon_pipeline.engine.instants import as_aware_utc, iso, parse_iso, utc_now
from storemon_pipeline.engine.state import (
    read_withheld_report,
    report_csv_path,
    report_sidecar_path,
)

ALIASES = "aliases"
# How many of the newest finished reports a trigger looks through for one it can answer with.
RECENT_FOR_REUSE = 20


@dataclass(frozen=True)
class FinishedReport:
    report_id: str
    csv_path: Path
    sidecar: dict[str, Any]


class ReportFiles:
    def __init__(self, reports_dir: Path) -> None:
        self.reports_dir = reports_dir.resolve()

    def _paths(self, report_id: str) -> tuple[Path, Path]:
        """Both paths, built from the canonical UUID only and checked to stay in the folder."""
        canonical = parse_report_id(report_id)
        csv_path = report_csv_path(self.reports_dir, canonical)
        sidecar_path = report_sidecar_path(self.reports_dir, canonical)
        for path in (csv_path, sidecar_path):
            if path.parent != self.reports_dir or path.stem != canonical:
                raise ValueError(f"refusing a report path outside {self.reports_dir}")
        return csv_path, sidecar_path

    def finished(self, report_id: str) -> FinishedReport | None:
        """The report if its CSV and sidecar are both there, else None."""
        csv_path, sidecar_path = self._paths(report_id)
        sidecar = read_json(sidecar_path)
        if sidecar is None or not csv_path.is_file():
            return None
        return FinishedReport(parse_report_id(report_id), csv_path, sidecar)

    def withheld(self, report_id: str) -> str | None:
        """Why the report was withheld (it failed a blocking check), or None."""
        found = read_withheld_report(self.reports_dir, parse_report_id(report_id))
        if found is None:
            return None
        return "; ".join(
            f"check {f.get('check')} failed: {f.get('description')}"
            for f in found.get("failed_checks", [])
        ) or "the report failed a check"

    def recent(self, limit: int) -> list[FinishedReport]:
        """The newest finished reports by sidecar time, newest first."""
        if not self.reports_dir.is_dir():
            return []
        sidecars: list[tuple[float, str]] = []
        for path in self.reports_dir.glob("*.json"):
            try:
                canonical = parse_report_id(path.stem)
                sidecars.append((path.stat().st_mtime, canonical))
            except (ValueError, OSError):
                continue  # not a report sidecar (or vanished meanwhile)
        sidecars.sort(reverse=True)
        found = (self.finished(report_id) for _, report_id in sidecars[: limit * 2])
        return [report for report in found if report is not None][:limit]



    def matching(self, partition: str, data_version: str) -> FinishedReport | None:
        """The newest finished report of this partition made under this data version."""
        for report in self.recent(RECENT_FOR_REUSE):
            sidecar = report.sidecar
            if sidecar.get("partition") == partition and sidecar.get("data_version") == (
                data_version
            ):
                return report
        return None

    def recent_aliases(self, limit: int) -> list[tuple[str, str, datetime | None]]:
        """(alias, the report it stands for, when it was made) of the newest aliases."""
        folder = self.reports_dir / ALIASES
        if not folder.is_dir():
            return []
        paths = sorted(folder.glob("*.json"), key=_mtime, reverse=True)[:limit]
        found = []
        for path in paths:
            alias = read_json(path)
            if alias is not None and "target" in alias:
                created = parse_iso(alias.get("created"))
                found.append((alias["report_id"], alias["target"], as_aware_utc(created)))
        return found

    def alias_target(self, report_id: str) -> str | None:
        """The report an alias stands for; None if the id is not an alias."""
        found = read_json(self._alias_path(report_id))
        return None if found is None else parse_report_id(found.get("target"))

    def write_alias(self, target: str, why: str) -> str:
        """A new report id standing for ``target``."""
        alias = str(uuid.uuid4())
        write_json_atomically(
            self._alias_path(alias),
            {"report_id": alias, "target": target, "why": why, "created": iso(utc_now())},
        )
        return alias

    def _alias_path(self, report_id: str) -> Path:
        return self.reports_dir / ALIASES / f"{parse_report_id(report_id)}.json"


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return 0.0
