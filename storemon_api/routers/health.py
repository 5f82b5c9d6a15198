"""Is the service able to do its job?"""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from storemon_api.deps import DagsterDep, StateDep, TokenAcceptedDep
from storemon_api.health import check_health
from storemon_api.models import Health

router = APIRouter(prefix="/health", tags=["health"])


@router.get(
    "",
    response_model=Health,
    responses={503: {"model": Health, "description": "Something the API needs is not ready."}},
    summary="Can a report be triggered now? The details with the token",
)
def health(dagster: DagsterDep, state: StateDep, with_details: TokenAcceptedDep) -> JSONResponse:
    """200 `ok`, or 503 `unavailable` with the reasons in words; `warnings`, in words, for what
    does not stop reports (alert events given up, or long undelivered). With the token (or when
    none is set), the details: Dagster's version and address, the state folder, the processes
    `storemon up` watches, the latest poll, the alerts' delivery."""
    body = check_health(dagster, state, with_details=with_details)
    code = 200 if body.status == "ok" else 503
    return JSONResponse(body.model_dump(mode="json"), status_code=code)
