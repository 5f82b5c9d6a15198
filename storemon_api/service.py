"""What a report's status is, from Dagster's run and the files on disk.

- Complete: the run succeeded and its CSV and sidecar are on disk. A finished report (CSV and
  sidecar) is also Complete when Dagster cannot be asked or no longer knows the run: it is an
  immutable file, and restarting or losing Dagster must not lose it.
- Running: the run is queued, starting, running or being canceled.
- Failed: the run failed or was canceled (with the reason), or it succeeded without a report.
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from typing import Any

import duckdb

from storemon_api.dagster_client import (
    DATA_VERSION_TAG,
    FAILED,
    IN_PROGRESS,
    PARTITION_TAG,
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
from storemon_pipeline.engine.state import read_data_version
from storemon_pipeline.settings import Settings

COMPLETE_CACHE_SIZE = 10_000


class ReportService:
    def __init__(self, dagster: DagsterClient, state: Settings) -> None:
        self.dagster = dagster
        self.state = state
        self.files = ReportFiles(state.reports_dir)
        # A Complete report never changes: repeated downloads need not ask Dagster again.
        self._complete: dict[str, ReportStatus] = {}
        self._deciding = threading.Lock()

    def trigger(self, tags: dict[str, str], fresh: bool = False) -> str:
        """A report as of the latest poll; returns its report id.

        If the data has not changed since a finished report of the latest partition, a new id
        standing for that report (an alias) answers at once; while an equivalent report is
        queued or running, a new id joins it; otherwise (or with ``fresh``) a Dagster run is
        launched and its id is the report's. One trigger at a time decides, so simultaneous
        triggers share one run.
        """
        # Normally read from latest_poll.json; the DuckDB fallback must not hold a request long.
        wait = min(self.state.lock_wait_seconds, 5.0)
        with self._deciding:
            try:
                partition = latest_report_partition_key(
                    self.state.state_dir, self.state.duckdb_path, wait
                )
            except duckdb.IOException as exc:
                raise Unavailable(
                    "the database is busy and no latest_poll.json is there yet; retry in a few "
                    "seconds"
                ) from exc
            version = read_data_version(self.state.state_dir)
            if version is not None and not fresh:
                finished = self.files.matching(partition, version)
                if finished is not None:
                    return self.files.write_alias(finished.report_id, "the data has not changed")
                running = self.dagster.runs(
                    limit=1,
                    in_flight_with_tags={PARTITION_TAG: partition, DATA_VERSION_TAG: version},
                )
                if running:
                    return self.files.write_alias(running[0].run_id, "joined a running report")
            version_tag = {DATA_VERSION_TAG: version} if version is not None else {}
            return self.dagster.launch_report(partition, tags={**tags, **version_tag})

    def status(self, report_id: str | None) -> tuple[ReportStatus, FinishedReport | None]:
        """The report's status, and its files when it is Complete (an alias answers as the
        report it stands for does)."""
        report_id = parse_report_id(report_id)
        target = self.files.alias_target(report_id)
        if target is not None:
            status, finished = self.status(target)
            return self._as_alias(report_id, status), finished
        finished = self.files.finished(report_id)
        if finished is not None and report_id in self._complete:
            return self._complete[report_id], finished
        try:
            run = self.dagster.run(report_id)
        except DagsterUnavailable:
            if finished is not None:
                return self._describe(report_id, None, finished), finished
            withheld = self.files.withheld(report_id)
            if withheld is None:
                raise
            # its run failed a blocking check: Failed, whether Dagster answers or not
            return self._failed(report_id, withheld), None
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

    def recent(self, limit: int, trigger: str | None = None) -> list[ReportStatus]:
        """The report job's latest runs plus finished reports made by other jobs (e.g. the
        Dagster UI's asset job), newest first; only those ``trigger`` launched, if given."""
        runs = {run.run_id: run for run in self.dagster.runs(limit=limit)}
        finished = {report.report_id: report for report in self.files.recent(limit)}
        others = [report_id for report_id in finished if report_id not in runs]
        if others:
            runs |= {run.run_id: run for run in self.dagster.runs(limit=limit, run_ids=others)}
        ids = set(runs) | set(finished)
        # Without failure reasons: one more query per failed run; /reports/{id} has the reason.
        described = {
            i: self._describe(i, runs.get(i), finished.get(i), with_reason=False) for i in ids
        }
        aliases = [
            self._as_alias(alias, described[target], requested)
            for alias, target, requested in self.files.recent_aliases(limit)
            if target in described
        ]
        every = [*described.values(), *aliases]
        if trigger is not None:
            every = [r for r in every if r.trigger == trigger]
        every.sort(key=lambda r: (r.requested or r.created or _EPOCH, r.report_id))
        return every[::-1][:limit]

    def _as_alias(
        self, alias: str, target_status: ReportStatus, requested: datetime | None = None
    ) -> ReportStatus:
        """An alias answers as the report it stands for, under its own id."""
        return target_status.model_copy(
            update={
                "report_id": alias,
                "links": self._links(alias, target_status),
                "requested": requested or target_status.requested,
            }
        )

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
            trigger=None if run is None else run.trigger,
            links=self._links(report_id, run),
        )

    def _failed(self, report_id: str, error: str) -> ReportStatus:
        return ReportStatus(
            report_id=report_id, status="Failed", error=error, links=self._links(report_id, None)
        )

    def _links(self, report_id: str, run: RunInfo | ReportStatus | None) -> ReportLinks:
        """Where to find the report (by this id) and the Dagster run that made it."""
        base = f"/reports/{report_id}"
        if isinstance(run, ReportStatus):
            dagster = run.links.dagster
        else:
            dagster = None if run is None else self.dagster.run_url(run.run_id)
        return ReportLinks(self=base, csv=f"{base}/csv", summary=f"{base}/summary", dagster=dagster)


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _parse(text: object) -> datetime | None:
    if not isinstance(text, str):
        return None
    try:
        return as_aware_utc(parse_iso(text))
    except ValueError:
        return None
