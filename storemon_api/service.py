"""What a report's status is, from Dagster's run and the files on disk.

- Complete: the run succeeded and its CSV and sidecar are on disk. A finished report (CSV and
  sidecar) is also Complete when Dagster cannot be asked or no longer knows the run: it is an
  immutable file, and restarting or losing Dagster must not lose it.
- Running: the run is queued, starting, running or being canceled.
- Failed: the run failed or was canceled (with the reason), or it succeeded without a report.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import duckdb

from storemon_api.dagster_client import (
    FAILED,
    IN_PROGRESS,
    DagsterClient,
    DagsterUnavailable,
    RunInfo,
)
from storemon_api.errors import ReportNotComplete, Unavailable, UnknownReport
from storemon_api.files import FinishedReport, ReportFiles
from storemon_api.ids import parse_report_id
from storemon_api.models import ReportLinks, ReportStatus
from storemon_pipeline.engine.history import latest_report_partition_key
from storemon_pipeline.engine.instants import as_aware_utc, parse_iso
from storemon_pipeline.settings import Settings

COMPLETE_CACHE_SIZE = 10_000


class ReportService:
    def __init__(self, dagster: DagsterClient, state: Settings) -> None:
        self.dagster = dagster
        self.state = state
        self.files = ReportFiles(state.reports_dir)
        # A Complete report never changes: repeated downloads need not ask Dagster again.
        self._complete: dict[str, ReportStatus] = {}

    def trigger(self, tags: dict[str, str]) -> str:
        """Launch the report of the latest poll's partition; returns the report (run) id."""
        # Normally read from latest_poll.json; the DuckDB fallback must not hold a request long.
        quick = self.state.model_copy(
            update={"lock_wait_seconds": min(self.state.lock_wait_seconds, 5.0)}
        )
        try:
            partition = latest_report_partition_key(quick)
        except duckdb.IOException as exc:
            raise Unavailable(
                "the database is busy and no latest_poll.json is there yet; retry in a few seconds"
            ) from exc
        return self.dagster.launch_report(partition, tags=tags)

    def status(self, report_id: str | None) -> tuple[ReportStatus, FinishedReport | None]:
        """The report's status, and its files when it is Complete."""
        report_id = parse_report_id(report_id)
        finished = self.files.finished(report_id)
        if finished is not None and report_id in self._complete:
            return self._complete[report_id], finished
        try:
            run = self.dagster.run(report_id)
        except DagsterUnavailable:
            if finished is None:
                raise
            return self._describe(report_id, None, finished), finished
        if run is None or not run.is_report(self.dagster.report_job):
            if finished is None:
                raise UnknownReport(f"no report with id {report_id}")
            run = None  # Dagster forgot the run (a new instance); the file is the report
        status = self._describe(report_id, run, finished)
        if status.status != "Complete":
            return status, None
        if len(self._complete) >= COMPLETE_CACHE_SIZE:
            self._complete.clear()
        self._complete[report_id] = status
        return status, finished

    def complete(self, report_id: str) -> FinishedReport:
        """The files of a Complete report; ReportNotComplete (409) otherwise."""
        report, finished = self.status(report_id)
        if finished is None:
            raise ReportNotComplete(report.status)
        return finished

    def recent(self, limit: int) -> list[ReportStatus]:
        """The report job's latest runs plus finished reports made by other jobs (e.g. the
        Dagster UI's asset job), newest first."""
        runs = {run.run_id: run for run in self.dagster.runs(limit=limit)}
        finished = {report.report_id: report for report in self.files.recent(limit)}
        others = [report_id for report_id in finished if report_id not in runs]
        if others:
            runs |= {run.run_id: run for run in self.dagster.runs(limit=limit, run_ids=others)}
        ids = set(runs) | set(finished)
        # Without failure reasons: one more query per failed run; /reports/{id} has the reason.
        described = [
            self._describe(i, runs.get(i), finished.get(i), with_reason=False) for i in ids
        ]
        described.sort(key=lambda r: (r.requested or r.created or _EPOCH, r.report_id))
        return described[::-1][:limit]

    def _describe(
        self,
        report_id: str,
        run: RunInfo | None,
        finished: FinishedReport | None,
        *,
        with_reason: bool = True,
    ) -> ReportStatus:
        sidecar: dict[str, Any] = finished.sidecar if finished else {}
        error = None
        if run is None or (run.status == "SUCCESS" and finished is not None):
            status = "Complete" if finished is not None else "Failed"
        elif run.status in IN_PROGRESS:
            status = "Running"
        elif run.status in FAILED:
            status = "Failed"
            error = self.dagster.failure_reason(report_id) if with_reason else None
        elif run.status == "SUCCESS":
            status = "Failed"
            error = (
                f"the run succeeded but its report is not in {self.files.reports_dir}: do the API "
                "and Dagster use the same STOREMON_HOME?"
            )
        else:
            status, error = "Failed", f"unexpected Dagster run status {run.status}"
        base = f"/reports/{report_id}"
        return ReportStatus(
            report_id=report_id,
            status=status,
            dagster_status=None if run is None else run.status,
            error=error,
            partition=(run.partition if run else None) or sidecar.get("partition"),
            as_of=_parse(sidecar.get("as_of")),
            requested=None if run is None else run.created,
            created=_parse(sidecar.get("created")),
            stores=sidecar.get("stores"),
            links=ReportLinks(
                self=base,
                csv=f"{base}/csv",
                summary=f"{base}/summary",
                dagster=None if run is None else self.dagster.run_url(report_id),
            ),
        )


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _parse(text: object) -> datetime | None:
    if not isinstance(text, str):
        return None
    try:
        return as_aware_utc(parse_iso(text))
    except ValueError:
        return None
