"""Error answers and examples shared by the routers' OpenAPI descriptions."""

from __future__ import annotations

from fastapi.responses import FileResponse

from storemon_api.files import FinishedReport
from storemon_api.ids import EXAMPLE_REPORT_ID
from storemon_api.models import Problem

CSV_EXAMPLE = (
    "store_id,uptime_last_hour,uptime_last_day,uptime_last_week,downtime_last_hour,"
    "downtime_last_day,downtime_last_week\n1481966498820158979,60.0,21.73,140.26,0.0,2.27,27.74\n"
)
CSV_CONTENT = {"text/csv": {"schema": {"type": "string"}, "example": CSV_EXAMPLE}}
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
NOT_COMPLETE = {409: {"model": Problem, "description": "The report is Running or Failed."}}


def csv_response(finished: FinishedReport) -> FileResponse:
    """A Complete report's CSV, as a download."""
    return FileResponse(
        finished.csv_path,
        media_type="text/csv",
        filename=f"report_{finished.report_id}.csv",
        headers={"X-Report-Status": "Complete"},
    )
