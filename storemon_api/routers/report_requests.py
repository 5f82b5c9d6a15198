"""The contract's two endpoints: trigger a report, then ask for it by id."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response, status

from storemon_api.dagster_client import API_RUN_TAGS
from storemon_api.deps import TOKEN_REQUIRED, ReportsDep
from storemon_api.models import FailedResponse, Problem, RunningResponse, TriggerResponse
from storemon_api.routers.responses import (
    CSV_CONTENT,
    ERRORS,
    REPORT_ERRORS,
    REPORT_ID_DOC,
    csv_response,
)

router = APIRouter(tags=["reports"], dependencies=TOKEN_REQUIRED)


@router.post(
    "/trigger_report",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=TriggerResponse,
    responses={**ERRORS, 502: {"model": Problem, "description": "Dagster refused the run."}},
    summary="Start a report as of the latest poll",
)
def trigger_report(
    response: Response,
    reports: ReportsDep,
    fresh: Annotated[
        bool, Query(description="Compute again even if the data has not changed.")
    ] = False,
) -> TriggerResponse:
    """A report of the partition holding the latest poll; answers at once with its id (poll
    `/get_report` with it).

    If the data has not changed since a finished report of that partition, the new id stands
    for that report and is already Complete; while an equivalent report is queued or running,
    it joins it; otherwise a Dagster run of `uptime_report` is launched (its run id is the
    report id), ahead of the sensors' and backfills' runs in Dagster's queue. `?fresh=true`
    always launches a run.
    """
    report_id = reports.trigger(tags=API_RUN_TAGS, fresh=fresh)
    response.headers["Location"] = f"/reports/{report_id}"
    return TriggerResponse(report_id=report_id)


@router.get(
    "/get_report",
    response_model=RunningResponse | FailedResponse,
    responses={
        200: {
            "description": "`Running` or `Failed` as JSON, or the CSV when Complete "
            "(with header `X-Report-Status: Complete`).",
            "content": CSV_CONTENT,
        },
        **REPORT_ERRORS,
    },
    summary="A report's status, or its CSV when complete",
)
def get_report(
    reports: ReportsDep,
    report_id: Annotated[str | None, Query(description=REPORT_ID_DOC)] = None,
) -> Response | RunningResponse | FailedResponse:
    """The classic contract: `{"status": "Running"}`, the CSV, or `{"status": "Failed", ...}`."""
    report, finished = reports.status(report_id)  # a missing id is malformed: 422
    if finished is not None:
        return csv_response(finished)
    if report.status == "Failed":
        return FailedResponse(error=report.error or "the report failed")
    return RunningResponse()
