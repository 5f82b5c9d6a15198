"""Is the service able to do its job?"""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from storemon_api.deps import DagsterDep, StateDep
from storemon_api.health import check_health
from storemon_api.models import Health

router = APIRouter(prefix="/health", tags=["health"])


@router.get(
    "",
    response_model=Health,
    responses={503: {"model": Health, "description": "Something the API needs is not ready."}},
    summary="Dagster reachable, state folder writable, latest poll",
)
def health(dagster: DagsterDep, state: StateDep) -> JSONResponse:
    body = check_health(dagster, state)
    code = 200 if body.status == "ok" else 503
    return JSONResponse(body.model_dump(mode="json"), status_code=code)
