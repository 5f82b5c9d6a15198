"""Reports as a resource: the list, one report's status, its CSV and its summary."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response
from fastapi.responses import FileResponse

from storemon_api.deps import TOKEN_REQUIRED, ApiSettingsDep, ReportsDep
from storemon_api.models import ReportList, ReportStatus, Trigger, UptimeSummary
from storemon_api.routers.responses import (
    CSV_CONTENT,
    ERRORS,
    NOT_COMPLETE,
    REPORT_ERRORS,
    csv_response,
)
from storemon_api.summary import uptime_summary

router = APIRouter(prefix="/reports", tags=["reports"], dependencies=TOKEN_REQUIRED)


@router.get("", response_model=ReportList, responses=ERRORS, summary="Recent reports, newest first")
def list_reports(
    settings: ApiSettingsDep,
    reports: ReportsDep,
    trigger: Annotated[
        Trigger | None,
        Query(description="Only the reports this launched (api, sensor, schedule, up, ui)."),
    ] = None,
) -> ReportList:
    return ReportList(reports=reports.recent(settings.reports_list_limit, trigger))


@router.get(
    "/{report_id}",
    response_model=ReportStatus,
    responses=REPORT_ERRORS,
    summary="A report's status",
)
def report_status(report_id: str, reports: ReportsDep) -> ReportStatus:
    return reports.status(report_id)[0]


@router.get(
    "/{report_id}/csv",
    response_class=FileResponse,
    responses={200: {"content": CSV_CONTENT}, **NOT_COMPLETE, **REPORT_ERRORS},
    summary="A complete report's CSV",
)
def report_csv(report_id: str, reports: ReportsDep) -> Response:
    return csv_response(reports.complete(report_id))


@router.get(
    "/{report_id}/summary",
    response_model=UptimeSummary,
    responses={**NOT_COMPLETE, **REPORT_ERRORS},
    summary="Distribution of last-week uptime across stores, and the worst stores",
)
def report_summary(
    report_id: str,
    reports: ReportsDep,
    worst: Annotated[int, Query(ge=1, le=100, description="How many worst stores.")] = 10,
) -> UptimeSummary:
    finished = reports.complete(report_id)
    figures = uptime_summary(finished.csv_path, worst)
    return UptimeSummary(
        report_id=finished.report_id, as_of=finished.sidecar.get("as_of"), **figures
    )
