"""Finished reports on disk: ``$STOREMON_HOME/reports/<run id>.csv`` and its sidecar ``.json``.

The Dagster run writes the CSV (atomically), then the sidecar: a sidecar next to its CSV means
the report is complete and will never change. So these files are served without asking
Dagster, which keeps finished reports downloadable while Dagster is down.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from storemon_api.ids import parse_report_id
from storemon_pipeline.engine.files import read_json
from storemon_pipeline.engine.state import report_csv_path, report_sidecar_path


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


