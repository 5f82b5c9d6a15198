"""FastAPI dependencies, in one place: settings, the state folder, the Dagster client, the
report, store, SLA and alert services, and the optional bearer token. Handlers take them as
``Annotated`` aliases."""

from __future__ import annotations

import secrets
from typing import Annotated

from fastapi import Depends, HTTPException, Request, status
from fastapi.security import HTTPBearer

from storemon_api.alerts import AlertService
from storemon_api.dagster_client import DagsterClient
from storemon_api.service import ReportService
from storemon_api.settings import ApiSettings
from storemon_api.sla import SlaService
from storemon_api.stores import StoreService
from storemon_pipeline.settings import Settings


async def get_api_settings(request: Request) -> ApiSettings:
    return request.app.state.settings


async def get_state(request: Request) -> Settings:
    """The pipeline's settings: where the state folder (reports, DuckDB) is."""
    return request.app.state.state


async def get_dagster(request: Request) -> DagsterClient:
    return request.app.state.dagster


async def get_reports(request: Request) -> ReportService:
    return request.app.state.reports


async def get_stores(request: Request) -> StoreService:
    return request.app.state.stores


async def get_sla(request: Request) -> SlaService:
    return request.app.state.sla


async def get_alerts(request: Request) -> AlertService:
    return request.app.state.alerts


ApiSettingsDep = Annotated[ApiSettings, Depends(get_api_settings)]
StateDep = Annotated[Settings, Depends(get_state)]
DagsterDep = Annotated[DagsterClient, Depends(get_dagster)]
ReportsDep = Annotated[ReportService, Depends(get_reports)]
StoresDep = Annotated[StoreService, Depends(get_stores)]
SlaDep = Annotated[SlaService, Depends(get_sla)]
AlertsDep = Annotated[AlertService, Depends(get_alerts)]

# auto_error=False: a missing header must give our 401 (with WWW-Authenticate), not a 403.
bearer = HTTPBearer(auto_error=False, description="STOREMON_API_TOKEN, when the server sets one.")


async def token_accepted(request: Request, settings: ApiSettingsDep) -> bool:
    """Whether the request may see everything: no token is configured, or the right one is
    sent."""
    expected = settings.token
    if expected is None:
        return True
    scheme, _, given = request.headers.get("authorization", "").partition(" ")
    return scheme.lower() == "bearer" and secrets.compare_digest(
        given.strip().encode(), expected.encode()
    )


TokenAcceptedDep = Annotated[bool, Depends(token_accepted)]


async def require_token(accepted: TokenAcceptedDep) -> None:
    """Passes when no token is configured or the right one is sent."""
    if not accepted:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            detail="a valid bearer token is required (Authorization: Bearer <STOREMON_API_TOKEN>)",
            headers={"WWW-Authenticate": "Bearer"},
        )


# For routers whose every endpoint needs the token (when one is set).
TOKEN_REQUIRED = [Depends(bearer), Depends(require_token)]
