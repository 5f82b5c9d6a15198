"""SLA periods: every store's availability over a month, an ISO week or a UTC range, as the
CSV of `storemon sla` or as JSON; one store's row with its incidents; the months to ask for."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Request, Response

from storemon_api.deps import TOKEN_REQUIRED, SlaDep, StateDep
from storemon_api.models import Problem, SlaMonthsResponse, SlaResponse, StoreSlaResponse
from storemon_api.routers.responses import ERRORS
from storemon_api.sla import SlaQuery, parse_sla_query

router = APIRouter(tags=["sla"], dependencies=TOKEN_REQUIRED)

SLA_CSV_EXAMPLE = (
    "store_id,period_start,period_end,business_hours,uptime_hours,downtime_hours,"
    "availability_pct,incidents,longest_incident_minutes,mean_time_to_recover_minutes,"
    "target_met\n1015372118842025109,2023-01-01T06:00:00+00:00,"
    "2023-01-25T23:59:55.381532+00:00,594.00,579.73,14.27,97.60,1,856.41,856.41,false\n"
)
PERIOD_ERRORS = {
    **ERRORS,
    404: {"model": Problem, "description": "No polls are loaded yet."},
    422: {"model": Problem, "description": "No period, more than one kind of period, `to` "
          "not after `from`, a malformed month or week, a target outside 0-100, a period "
          "longer than the retention, or a malformed store id."},
    503: {"model": Problem, "description": "A run is writing the stores' database: retry."},
}
STORE_SLA_ERRORS = {
    **PERIOD_ERRORS,
    404: {"model": Problem, "description": "No poll of this store by the period's end."},
}

Since = Annotated[
    datetime | None, Query(alias="from", description="Period start, a UTC instant (ISO-8601).")
]
Until = Annotated[
    datetime | None, Query(alias="to", description="Period end (exclusive), after `from`.")
]
Month = Annotated[str | None, Query(description="YYYY-MM: each store's local calendar month.")]
Week = Annotated[str | None, Query(description="YYYY-Www: each store's local ISO week.")]
Target = Annotated[
    float | None,
    Query(description="Availability to meet, percent (0-100). Default: STOREMON_SLA_TARGET_PCT."),
]


def period_query(
    state: StateDep,
    since: Since = None,
    until: Until = None,
    month: Month = None,
    week: Week = None,
    target: Target = None,
) -> SlaQuery:
    """The period and target a request asks for (422 when they cannot be asked for)."""
    return parse_sla_query(state, since, until, month, week, target)


PeriodDep = Annotated[SlaQuery, Depends(period_query)]


def _wants_json(request: Request) -> bool:
    return "application/json" in request.headers.get("accept", "").lower()


@router.get(
    "/sla",
    response_model=SlaResponse,
    responses={
        **PERIOD_ERRORS,
        200: {"content": {"text/csv": {"schema": {"type": "string"},
                                       "example": SLA_CSV_EXAMPLE}},
              "description": "The CSV by default; JSON with `Accept: application/json`."},
    },
    summary="Every store's availability, incidents and target over one period",
)
def sla(
    request: Request,
    service: SlaDep,
    period: PeriodDep,
    store: Annotated[
        list[str] | None, Query(description="Only this store (repeat for more).")
    ] = None,
) -> Response | SlaResponse:
    """Give one period: `from` and `to`, `month` or `week` (docs/semantics.md §2.17), computed
    as of min(end, latest poll). A month the `monthly_sla` asset saved is read from that file
    (`source.kind` "partition"), anything else is computed now ("computed"). The CSV is exactly
    `storemon sla`'s; the JSON's rows hold its values as numbers."""
    query = period.for_stores(store)
    if _wants_json(request):
        return service.fleet(query, _csv_url(request))
    return _csv_response(service.csv(query), query)


@router.get(
    "/sla/months",
    response_model=SlaMonthsResponse,
    responses=ERRORS,
    summary="The months to ask /sla for: saved ones, and those the polls span",
)
def sla_months(service: SlaDep) -> SlaMonthsResponse:
    return service.months()


@router.get(
    "/stores/{store_id}/sla",
    response_model=StoreSlaResponse,
    responses=STORE_SLA_ERRORS,
    summary="A store's availability over one period, with its incidents",
)
def store_sla(
    store_id: Annotated[str, Path(description="As in the feeds, e.g. 1481966498820158979.")],
    service: SlaDep,
    period: PeriodDep,
) -> StoreSlaResponse:
    """The store's row of `GET /sla` for the same period, and each incident (a maximal
    inactive interval overlapping business time, cut at the period's bounds) with the business
    minutes it covers."""
    return service.store(store_id, period)


def _csv_url(request: Request) -> str:
    return f"{request.url.path}?{request.url.query}"


def _csv_response(body: bytes, query: SlaQuery) -> Response:
    return Response(
        body,
        media_type="text/csv",
        headers={"Content-Disposition": f'attachment; filename="{query.file_name}"'},
    )
