"""One store: its uptime history, hour by hour, as the report partitions hold it."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Path, Query

from storemon_api.deps import TOKEN_REQUIRED, StoresDep
from storemon_api.models import Problem, StoreHistoryResponse
from storemon_api.routers.responses import ERRORS

router = APIRouter(prefix="/stores", tags=["stores"], dependencies=TOKEN_REQUIRED)
STORE_ERRORS = {
    **ERRORS,
    404: {"model": Problem, "description": "No report partition holds this store."},
    422: {"model": Problem, "description": "Not a store id the ingest accepts."},
}


@router.get(
    "/{store_id}/history",
    response_model=StoreHistoryResponse,
    responses=STORE_ERRORS,
    summary="A store's values in every report partition",
)
def store_history(
    store_id: Annotated[str, Path(description="As in the feeds, e.g. 1481966498820158979.")],
    stores: StoresDep,
    since: Annotated[
        datetime | None, Query(alias="from", description="First as-of to include (ISO-8601).")
    ] = None,
    until: Annotated[
        datetime | None, Query(alias="to", description="Last as-of to include (ISO-8601).")
    ] = None,
) -> StoreHistoryResponse:
    """Read from the report history (the partitions of `uptime_report`); nothing is
    recomputed. Values as in the report CSV: minutes for the hour, hours for day and week."""
    return stores.history(store_id, since, until)
