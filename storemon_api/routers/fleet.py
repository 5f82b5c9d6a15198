"""The fleet: every store together, hour by hour, as the report partitions hold it."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query

from storemon_api.deps import TOKEN_REQUIRED, StoresDep
from storemon_api.models import FleetHistoryResponse
from storemon_api.routers.responses import ERRORS

router = APIRouter(prefix="/fleet", tags=["fleet"], dependencies=TOKEN_REQUIRED)


@router.get(
    "/history",
    response_model=FleetHistoryResponse,
    responses=ERRORS,
    summary="The share of all stores' business time that was up, partition by partition",
)
def fleet_history(
    stores: StoresDep,
    since: Annotated[
        datetime | None,
        Query(alias="from", description="First partition hour (ISO-8601). Default: a week "
              "before the newest partition."),
    ] = None,
    until: Annotated[
        datetime | None,
        Query(alias="to", description="Last partition hour (ISO-8601). Default: the newest."),
    ] = None,
) -> FleetHistoryResponse:
    """Read from the report history; nothing is recomputed."""
    return stores.fleet_history(since, until)
