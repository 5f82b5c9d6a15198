"""Errors the endpoints raise, and the one-sentence JSON answers they become (no tracebacks)."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from storemon_api.ids import MalformedReportId

log = logging.getLogger("storemon_api")


class Unavailable(RuntimeError):
    """Something the API relies on (Dagster, the database) cannot answer now: 503."""


class UpstreamError(RuntimeError):
    """Dagster answered with an error: 502."""


class UnknownReport(LookupError):
    """No report with this id: 404."""


class UnknownStore(LookupError):
    """No report partition holds this store: 404."""


class MalformedStoreId(ValueError):
    """Not a store id the ingest would accept: 422."""

    def __init__(self) -> None:
        super().__init__(
            "store_id must be 1 to 128 letters, digits or _ . : - starting with a letter or digit"
        )


class BadSlaQuery(ValueError):
    """An SLA period or target that cannot be asked for: 422."""


class BadAlertQuery(ValueError):
    """An alert state that does not exist: 422."""


class NoPolls(LookupError):
    """No polls are loaded yet: nothing to compute a period on: 404."""


class ReportNotComplete(RuntimeError):
    """The CSV of a Running or Failed report was asked for: 409."""

    def __init__(self, status: str) -> None:
        super().__init__(f"the report is {status}, not Complete: see /reports/<id> for its status")


_STATUS: dict[type[Exception], int] = {
    MalformedReportId: 422,
    MalformedStoreId: 422,
    BadSlaQuery: 422,
    BadAlertQuery: 422,
    NoPolls: 404,
    UnknownReport: 404,
    UnknownStore: 404,
    ReportNotComplete: 409,
    Unavailable: 503,
    UpstreamError: 502,
}


def install_handlers(app: FastAPI) -> None:
    for kind, code in _STATUS.items():
        app.add_exception_handler(kind, _handler(code))
    app.add_exception_handler(Exception, _unexpected)


def _handler(code: int):
    async def handle(_request: Request, exc: Exception) -> JSONResponse:
        headers = {"Retry-After": "5"} if code == 503 else None
        return JSONResponse({"detail": str(exc)}, status_code=code, headers=headers)

    return handle


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    log.exception("unexpected error on %s %s", request.method, request.url.path, exc_info=exc)
    return JSONResponse(
        {"detail": f"internal error ({type(exc).__name__}); see the API's log"}, status_code=500
    )
