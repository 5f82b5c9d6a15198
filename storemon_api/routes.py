"""The endpoints. Each is a thin shell: parse, ask ReportService, shape the answer."""

from __future__ import annotations

import tempfile
from typing import Annotated

import duckdb
from fastapi import APIRouter, Depends, Query, Request, Response, status
from fastapi.responses import FileResponse, JSONResponse

from storemon_api.auth import bearer, require_token
from storemon_api.dagster import DagsterGateway
from storemon_api.errors import ReportNotComplete, Unavailable
from storemon_api.files import FinishedReport
from storemon_api.ids import EXAMPLE_REPORT_ID
from storemon_api.models import (
    ComponentHealth,
    FailedResponse,
    Health,
    Problem,
    ReportList,
    ReportStatus,
    RunningResponse,
    TriggerResponse,
    UptimeSummary,
)
from storemon_api.service import ReportService
from storemon_api.summary import uptime_summary
from storemon_pipeline.defs.partitions import latest_report_partition_key
from storemon_pipeline.engine.instants import as_aware_utc
from storemon_pipeline.engine.state import read_latest_poll
from storemon_pipeline.settings import Settings

CSV_EXAMPLE = (
    "store_id,uptime_last_hour,uptime_last_day,uptime_last_week,downtime_last_hour,"
    "downtime_last_day,downtime_last_week\n1481966498820158979,60.0,21.73,140.26,0.0,2.27,27.74\n"
)
REPORT_ID_DOC = f"From POST /trigger_report: a Dagster run id (UUID), e.g. {EXAMPLE_REPORT_ID}."
ERRORS = {
    401: {"model": Problem, "description": "Token required (STOREMON_API_TOKEN is set)."},
    503: {"model": Problem, "description": "The Dagster webserver is unreachable."},
}
REPORT_ERRORS = {
    **ERRORS,
    404: {"model": Problem, "description": "No report with this id."},
    422: {"model": Problem, "description": "Not a report id (a UUID)."},
}

protected = APIRouter(dependencies=[Depends(bearer), Depends(require_token)])
public = APIRouter()


def service(request: Request) -> ReportService:
    return request.app.state.service


ServiceDep = Annotated[ReportService, Depends(service)]


@protected.post(
    "/trigger_report",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=TriggerResponse,
    responses={**ERRORS, 502: {"model": Problem, "description": "Dagster refused the run."}},
    tags=["reports"],
    summary="Start a report as of the latest poll",
)
def trigger_report(request: Request, response: Response, reports: ServiceDep) -> TriggerResponse:
    """Launch the `uptime_report` materialization for the partition holding the latest poll.

    Answers at once with the report id (the Dagster run id); poll `/get_report` with it.
    """
    state: Settings = request.app.state.state
    # Normally read from latest_poll.json; the DuckDB fallback must not hold the request long.
    quick = state.model_copy(update={"lock_wait_seconds": min(state.lock_wait_seconds, 5.0)})
    try:
        partition = latest_report_partition_key(quick)
    except duckdb.IOException as exc:
        raise Unavailable(
            "the database is busy and no latest_poll.json is there yet; retry in a few seconds"
        ) from exc
    run_id = reports.gateway.launch_report(partition, tags={"storemon/source": "api"})
    response.headers["Location"] = f"/reports/{run_id}"
    return TriggerResponse(report_id=run_id)


@protected.get(
    "/get_report",
    response_model=RunningResponse | FailedResponse,
    responses={
        200: {
            "description": "`Running` or `Failed` as JSON, or the CSV when Complete "
            "(with header `X-Report-Status: Complete`).",
            "content": {"text/csv": {"schema": {"type": "string"}, "example": CSV_EXAMPLE}},
        },
        **REPORT_ERRORS,
    },
    tags=["reports"],
    summary="A report's status, or its CSV when complete",
)
def get_report(
    reports: ServiceDep,
    report_id: Annotated[str | None, Query(description=REPORT_ID_DOC)] = None,
) -> Response | RunningResponse | FailedResponse:
    """The classic contract: `{"status": "Running"}`, the CSV, or `{"status": "Failed", ...}`."""
    report, finished = reports.status(report_id)  # a missing id is malformed: 422
    if finished is not None:
        return _csv(finished, {"X-Report-Status": "Complete"})
    if report.status == "Failed":
        return FailedResponse(error=report.error or "the report failed")
    return RunningResponse()


@protected.get("/reports", response_model=ReportList, responses=ERRORS, tags=["reports"],
               summary="Recent reports, newest first")
def list_reports(request: Request, reports: ServiceDep) -> ReportList:
    return ReportList(reports=reports.recent(request.app.state.settings.reports_list_limit))


@protected.get("/reports/{report_id}", response_model=ReportStatus, responses=REPORT_ERRORS,
               tags=["reports"], summary="A report's status")
def report_status(report_id: str, reports: ServiceDep) -> ReportStatus:
    return reports.status(report_id)[0]


@protected.get(
    "/reports/{report_id}/csv",
    response_class=FileResponse,
    responses={
        200: {"content": {"text/csv": {"schema": {"type": "string"}, "example": CSV_EXAMPLE}}},
        409: {"model": Problem, "description": "The report is Running or Failed."},
        **REPORT_ERRORS,
    },
    tags=["reports"],
    summary="A complete report's CSV",
)
def report_csv(report_id: str, reports: ServiceDep) -> Response:
    return _csv(_complete(reports, report_id), {"X-Report-Status": "Complete"})


@protected.get(
    "/reports/{report_id}/summary",
    response_model=UptimeSummary,
    responses={409: {"model": Problem, "description": "Not Complete."}, **REPORT_ERRORS},
    tags=["reports"],
    summary="Distribution of last-week uptime across stores, and the worst stores",
)
def report_summary(
    report_id: str,
    reports: ServiceDep,
    worst: Annotated[int, Query(ge=1, le=100, description="How many worst stores.")] = 10,
) -> UptimeSummary:
    finished = _complete(reports, report_id)
    figures = uptime_summary(finished.csv_path, worst)
    return UptimeSummary(
        report_id=finished.report_id, as_of=finished.sidecar.get("as_of"), **figures
    )


@public.get(
    "/health",
    response_model=Health,
    responses={503: {"model": Health, "description": "Something the API needs is not ready."}},
    tags=["health"],
    summary="Dagster reachable, state folder writable, latest poll",
)
def health(request: Request) -> JSONResponse:
    gateway: DagsterGateway = request.app.state.service.gateway
    state: Settings = request.app.state.state
    reasons: list[str] = []
    try:
        dagster = gateway.health()
        reasons += dagster.problems
        dagster_ok = ComponentHealth(
            ok=not dagster.problems,
            detail="; ".join(dagster.problems) or f"Dagster {dagster.version} at {gateway.url}",
        )
    except Exception as exc:  # unreachable, or answering nonsense: either way not healthy
        reasons.append(str(exc))
        dagster_ok = ComponentHealth(ok=False, detail=str(exc))
    folder = _writable(state)
    if not folder.ok:
        reasons.append(folder.detail)
    try:
        latest = read_latest_poll(state.state_dir)
    except (ValueError, OSError):
        latest = None
    body = Health(
        status="unavailable" if reasons else "ok",
        dagster=dagster_ok,
        state_folder=folder,
        latest_poll=as_aware_utc(latest),
        reasons=reasons,
    )
    return JSONResponse(body.model_dump(mode="json"), status_code=503 if reasons else 200)


def _writable(state: Settings) -> ComponentHealth:
    folder = state.state_dir
    try:
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".health."):
            pass
    except OSError as exc:
        return ComponentHealth(ok=False, detail=f"state folder {folder} is not writable: {exc}")
    return ComponentHealth(ok=True, detail=f"{folder} is writable")


def _complete(reports: ReportService, report_id: str) -> FinishedReport:
    report, finished = reports.status(report_id)
    if finished is None:
        raise ReportNotComplete(report.status)
    return finished


def _csv(finished: FinishedReport, headers: dict[str, str]) -> FileResponse:
    return FileResponse(
        finished.csv_path,
        media_type="text/csv",
        filename=f"report_{finished.report_id}.csv",
        headers=headers,
    )
