"""One store: its uptime history, hour by hour, as the report partitions hold it; and how its
numbers were made, as of any instant."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Path, Query

from storemon_api.deps import TOKEN_REQUIRED, StoresDep
from storemon_api.models import Problem, StoreHistoryResponse, StoreTimelineResponse
from storemon_api.routers.responses import ERRORS

router = APIRouter(prefix="/stores", tags=["stores"], dependencies=TOKEN_REQUIRED)
STORE_ERRORS = {
    **ERRORS,
    404: {"model": Problem, "description": "No report partition holds this store."},
    422: {"model": Problem, "description": "Not a store id the ingest accepts."},
}
TIMELINE_ERRORS = {
    **STORE_ERRORS,
    404: {"model": Problem, "description": "No poll of this store was ever loaded."},
}
StoreId = Annotated[str, Path(description="As in the feeds, e.g. 1481966498820158979.")]


@router.get(
    "/{store_id}/history",
    response_model=StoreHistoryResponse,
    responses=STORE_ERRORS,
    summary="A store's values in every report partition",
)
def store_history(
    store_id: StoreId,
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


@router.get(
    "/{store_id}/timeline",
    response_model=StoreTimelineResponse,
    responses=TIMELINE_ERRORS,
    summary="How a store's numbers were made: its week as of an instant",
)
def store_timeline(
    store_id: StoreId,
    stores: StoresDep,
    as_of: Annotated[
        datetime | None,
        Query(description="The report instant (ISO-8601). Default: the newest report "
              "partition's as-of, else the latest poll."),
    ] = None,
) -> StoreTimelineResponse:
    """The store's business windows (with the special dates that replace weekly rows), polls
    (used or not, and why), interpolated status and business time by status over the week
    before `as_of`, with the report's six values for that instant, which the windows and
    status add up to; and the report partition and Dagster run the numbers come from, when
    one has this as-of."""
    return stores.timeline(store_id, as_of)
