"""Alerts on stores that are down: every store's, or one store's, with their events' delivery."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query

from storemon_api.deps import TOKEN_REQUIRED, AlertsDep, TokenAcceptedDep
from storemon_api.models import AlertsResponse, Problem
from storemon_api.routers.responses import ERRORS
from storemon_pipeline.engine.alerts import ALERT_STATES

router = APIRouter(tags=["alerts"], dependencies=TOKEN_REQUIRED)

ALERT_ERRORS = {
    **ERRORS,
    422: {"model": Problem, "description": "A state other than open or resolved, or a "
          "malformed store id."},
    503: {"model": Problem, "description": "A run is writing the stores' database: retry."},
}
STORE_ALERT_ERRORS = {
    **ALERT_ERRORS,
    404: {"model": Problem, "description": "No poll of this store was ever loaded."},
}
State = Annotated[
    str | None,
    Query(description="Only the alerts in this state.",
          json_schema_extra={"enum": list(ALERT_STATES)}),
]


@router.get(
    "/alerts",
    response_model=AlertsResponse,
    responses=ALERT_ERRORS,
    summary="The alerts on stores that are down, newest first",
)
def alerts(
    service: AlertsDep,
    with_errors: TokenAcceptedDep,
    state: State = None,
    store_id: Annotated[str | None, Query(description="Only this store's alerts.")] = None,
) -> AlertsResponse:
    """As the last evaluation after an ingest left them (docs/semantics.md §2.18): a store down
    for at least `STOREMON_ALERT_MIN_DOWN_MINUTES` of business time as of the latest poll has
    one open alert, resolved when it is seen up again. Each alert links to the store's week at
    it and lists its events with their delivery to the webhooks. Nothing is loaded yet: no
    alerts."""
    return service.fleet(state, store_id, with_errors=with_errors)


@router.get(
    "/stores/{store_id}/alerts",
    response_model=AlertsResponse,
    responses=STORE_ALERT_ERRORS,
    summary="A store's alerts, newest first",
)
def store_alerts(
    store_id: Annotated[str, Path(description="As in the feeds, e.g. 1481966498820158979.")],
    service: AlertsDep,
    with_errors: TokenAcceptedDep,
    state: State = None,
) -> AlertsResponse:
    """The items of `GET /alerts?store_id=...`, with a 404 for a store never polled."""
    return service.store(store_id, state, with_errors=with_errors)
