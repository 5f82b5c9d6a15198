"""Response bodies, with examples for the OpenAPI page at /docs."""

from __future__ import annotations

from datetime import datetime
from typing import ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field

from storemon_api.ids import EXAMPLE_REPORT_ID

Status = Literal["Running", "Complete", "Failed"]
Trigger = Literal["api", "sensor", "schedule", "up", "ui"]


def _example(**example: object) -> ConfigDict:
    return ConfigDict(json_schema_extra={"examples": [example]})


class Problem(BaseModel):
    """Every error answer: one sentence for a person."""

    model_config = _example(detail="the Dagster webserver at http://127.0.0.1:3000 is unreachable")
    detail: str


class TriggerResponse(BaseModel):
    model_config = _example(report_id=EXAMPLE_REPORT_ID)
    report_id: str = Field(
        description="Pass it to /get_report: a Dagster run id, or a new id standing for an "
        "equivalent report (unchanged data, or one already running)."
    )


class RunningResponse(BaseModel):
    model_config = _example(status="Running")
    status: Literal["Running"] = "Running"


class FailedResponse(BaseModel):
    model_config = _example(status="Failed", error="step uptime_report: no polls are loaded yet")
    status: Literal["Failed"] = "Failed"
    error: str


class ReportLinks(BaseModel):
    self: str
    csv: str = Field(description="The CSV, once the report is Complete.")
    summary: str = Field(description="Last-week uptime distribution, once Complete.")
    dagster: str | None = Field(default=None, description="The run in the Dagster UI.")


class ReportStatus(BaseModel):
    model_config = _example(
        report_id=EXAMPLE_REPORT_ID,
        status="Complete",
        dagster_status="SUCCESS",
        error=None,
        partition="2023-01-25-18:00",
        as_of="2023-01-25T18:13:22.479510Z",
        requested="2024-05-01T09:30:00.123000Z",
        created="2024-05-01T09:30:02.481000Z",
        stores=14092,
        trigger="api",
        links={
            "self": f"/reports/{EXAMPLE_REPORT_ID}",
            "csv": f"/reports/{EXAMPLE_REPORT_ID}/csv",
            "summary": f"/reports/{EXAMPLE_REPORT_ID}/summary",
            "dagster": f"http://127.0.0.1:3000/runs/{EXAMPLE_REPORT_ID}",
        },
    )
    report_id: str
    status: Status
    dagster_status: str | None = Field(
        default=None, description="Dagster's run status (QUEUED, STARTED, SUCCESS...), if known."
    )
    error: str | None = Field(default=None, description="Why it failed (status Failed).")
    partition: str | None = Field(default=None, description="The report partition (UTC hour).")
    as_of: datetime | None = Field(default=None, description="The report's instant T (Complete).")
    requested: datetime | None = Field(default=None, description="When the run was created.")
    created: datetime | None = Field(default=None, description="When the CSV was finished.")
    stores: int | None = Field(default=None, description="Rows (stores) in the CSV.")
    trigger: Trigger | None = Field(
        default=None,
        description="What launched the run: the API, a sensor (after an ingest), the hourly "
        "schedule, `storemon up`, or someone in the Dagster UI; None if Dagster does not know "
        "the run.",
    )
    links: ReportLinks


class ReportList(BaseModel):
    reports: list[ReportStatus] = Field(description="Newest first.")


class UptimeBin(BaseModel):
    lower: int = Field(description="Uptime share, percent, inclusive.")
    upper: int = Field(description="Exclusive, except 100 for the last bin.")
    stores: int


class WorstStore(BaseModel):
    store_id: str
    uptime_percent: float = Field(description="Uptime share of last week's business time.")
    uptime_last_week: float = Field(description="Hours.")
    downtime_last_week: float = Field(description="Hours.")


class UptimeSummary(BaseModel):
    model_config = _example(
        report_id=EXAMPLE_REPORT_ID,
        as_of="2023-01-25T18:13:22.479510Z",
        stores=14092,
        stores_with_business_time=14090,
        stores_with_full_uptime=9120,
        mean_uptime_percent=93.4,
        median_uptime_percent=100.0,
        overall_uptime_percent=93.1,
        bins=[{"lower": 95, "upper": 100, "stores": 10011}],
        worst=[
            {
                "store_id": "8419537941919820732",
                "uptime_percent": 0.0,
                "uptime_last_week": 0.0,
                "downtime_last_week": 98.5,
            }
        ],
    )
    report_id: str
    as_of: datetime | None
    stores: int
    stores_with_business_time: int = Field(description="Stores open at all last week.")
    stores_with_full_uptime: int
    mean_uptime_percent: float | None
    median_uptime_percent: float | None
    overall_uptime_percent: float | None = Field(
        description="All stores' uptime over all stores' business time."
    )
    bins: list[UptimeBin] = Field(description="Stores by last-week uptime share, 5 % bins.")
    worst: list[WorstStore] = Field(description="Lowest uptime share first.")


class ComponentHealth(BaseModel):
    ok: bool
    detail: str


class HealthDetails(BaseModel):
    dagster: ComponentHealth
    state_folder: ComponentHealth
    services: ComponentHealth = Field(
        description="The processes `storemon up` watches (when it runs the API)."
    )
    broker: ComponentHealth | None = Field(
        default=None, description="The Celery executor's Redis (null: in-process executor)."
    )
    latest_poll: datetime | None = Field(
        description="Newest poll after the last ingest (null: none yet)."
    )
    alerts: ComponentHealth | None = Field(
        default=None, description="The alerts' events and their delivery to the webhooks, as "
        "the last delivery round or evaluation left them (null: none yet); ok: none given up."
    )


class Health(BaseModel):
    """Whether a report can be triggered now, and if not why, in words. The details (where,
    which versions, what failed exactly) only with the token, when one is set."""

    model_config = _example(
        status="unavailable",
        reasons=["the code server stopped and is being restarted"],
        warnings=["3 alert events could not be delivered to a webhook and were given up (dead)"],
        details={
            "dagster": {"ok": True, "detail": "Dagster 1.13.27 at http://127.0.0.1:3000"},
            "state_folder": {"ok": True, "detail": "/srv/storemon/var is writable"},
            "services": {"ok": False, "detail": "code-server: waiting (2 quick crashes)"},
            "latest_poll": "2023-01-25T18:13:22.479510Z",
            "alerts": {"ok": False, "detail": "alert events: 0 pending, 12 delivered, 3 dead, "
                       "1 webhook; last error: https://hooks.example.com/x: HTTP 500"},
        },
    )
    status: Literal["ok", "unavailable"]
    reasons: list[str] = Field(description="Why the status is unavailable, in words.")
    warnings: list[str] = Field(
        default_factory=list,
        description="What is wrong without stopping reports (alert events given up, or left "
        "undelivered), in words.",
    )
    details: HealthDetails | None = Field(
        default=None, description="With the token (or when none is set)."
    )


class ReportValues(BaseModel):
    """A store's six values, as in the report CSV."""

    VALUES: ClassVar[tuple[str, ...]] = (
        "uptime_last_hour", "uptime_last_day", "uptime_last_week",
        "downtime_last_hour", "downtime_last_day", "downtime_last_week",
    )
    uptime_last_hour: float = Field(description="Minutes.")
    uptime_last_day: float = Field(description="Hours.")
    uptime_last_week: float = Field(description="Hours.")
    downtime_last_hour: float = Field(description="Minutes.")
    downtime_last_day: float = Field(description="Hours.")
    downtime_last_week: float = Field(description="Hours.")


class HistoryRow(ReportValues):
    """A store's row in one report partition: the values of the report CSV."""

    partition: str = Field(description="The report partition: a UTC hour, YYYY-MM-DD-HH:MM.")
    as_of: datetime = Field(description="The report's instant T for that partition.")


class StoreHistoryResponse(BaseModel):
    model_config = _example(
        store_id="1481966498820158979",
        rows=[
            {
                "partition": "2023-01-25-17:00",
                "as_of": "2023-01-25T18:00:00Z",
                "uptime_last_hour": 60.0,
                "uptime_last_day": 21.73,
                "uptime_last_week": 140.26,
                "downtime_last_hour": 0.0,
                "downtime_last_day": 2.27,
                "downtime_last_week": 27.74,
            }
        ],
    )
    store_id: str
    rows: list[HistoryRow] = Field(description="One per report partition, oldest first.")


# --- a store's timeline (GET /stores/{id}/timeline) and the fleet's history -------------------

PollStatus = Literal["active", "inactive"]


class Span(BaseModel):
    start: datetime
    end: datetime


class StatusSpan(Span):
    status: PollStatus


class WeeklyHours(BaseModel):
    day_of_week: int = Field(ge=0, le=6, description="0 = Monday.")
    day: str
    start_local: str = Field(description="HH:MM:SS, local time.")
    end_local: str = Field(description="HH:MM:SS; 24:00:00 is midnight; <= start: overnight.")


class SpecialWindow(BaseModel):
    start_local: str = Field(description="HH:MM:SS, local time.")
    end_local: str = Field(
        description="HH:MM:SS; 24:00:00 is midnight; <= start: runs into the next date."
    )


class SpecialDate(BaseModel):
    """A local date with special hours: its windows instead of the weekday's weekly rows."""

    date: str = Field(description="The store's local date, YYYY-MM-DD.")
    day: str
    closed: bool = Field(description="No window that date: closed all day.")
    windows: list[SpecialWindow] = Field(description="The date's business hours (local).")
    reason: str | None = Field(description="As in the feed (several: joined by '; ').")
    replaced_weekly: list[WeeklyHours] = Field(
        description="The weekday's weekly rows, which this date does not have."
    )
    replaced_open_24x7: bool = Field(
        description="No business-hours rows: this date replaces a whole day open."
    )


class LocalDay(BaseModel):
    date: str = Field(description="A local calendar date that touches the week.")
    start_utc: datetime
    end_utc: datetime


class BusinessWindow(BaseModel):
    start_utc: datetime
    end_utc: datetime
    start_local: datetime
    end_local: datetime


class TimelinePoll(BaseModel):
    ts: datetime
    ts_local: datetime
    status: PollStatus
    used: bool = Field(description="Whether the report's interpolation used this poll.")
    unused_reason: str | None


class PeriodTotals(BaseModel):
    start: datetime
    end: datetime
    business_seconds: float
    uptime_seconds: float
    downtime_seconds: float


class TimelineSource(BaseModel):
    partition: str = Field(description="The report partition with this as-of.")
    run_id: str | None = Field(description="The Dagster run that computed it.")
    dagster_run_url: str | None
    dagster_partition_url: str | None


class StoreTimelineResponse(BaseModel):
    """How a store's numbers were made (docs/semantics.md §2.15)."""

    store_id: str
    as_of: datetime
    timezone: str
    timezone_defaulted: bool = Field(description="No valid time-zone row: the default zone.")
    open_24x7: bool = Field(description="No business-hours rows: open 24x7.")
    business_hours: list[WeeklyHours]
    special_dates: list[SpecialDate] = Field(
        description="Dates with special hours: the local days that touch the week and the day "
        "before (its overnight rows reach into the week)."
    )
    week: Span = Field(description="[as_of - 7 days, as_of).")
    days: list[LocalDay] = Field(description="The local days that touch the week.")
    business_windows: list[BusinessWindow] = Field(description="Clipped to the week.")
    polls: list[TimelinePoll] = Field(
        description="The week's polls, and the used poll before it whose span reaches into it."
    )
    sequence: Literal["in-hours polls", "all polls"] | None = Field(
        description="Which polls the interpolation used (None: the store is not reported)."
    )
    status_runs: list[StatusSpan] = Field(description="The interpolated status over the week.")
    segments: list[StatusSpan] = Field(
        description="Business time split by status: what the values add up from."
    )
    periods: dict[Literal["hour", "day", "week"], PeriodTotals]
    values: ReportValues | None = Field(
        description="The store's row of the report CSV (None: no poll at or before as_of)."
    )
    source: TimelineSource | None = Field(
        description="The stored report partition with this as-of, if any."
    )


class FleetHistoryRow(BaseModel):
    partition: str
    as_of: datetime
    stores: int
    uptime_share_hour: float | None = Field(description="Of all stores' business time.")
    uptime_share_day: float | None
    uptime_share_week: float | None


class FleetHistoryResponse(BaseModel):
    rows: list[FleetHistoryRow] = Field(description="One per report partition, oldest first.")


# --- SLA periods (GET /sla, GET /stores/{id}/sla, GET /sla/months) -------------------------

SlaPeriodKind = Literal["month", "week", "range"]


class SlaPeriod(BaseModel):
    kind: SlaPeriodKind
    name: str = Field(description="2023-01, 2023-W03, or '<from> to <to>' (UTC).")
    local: bool = Field(
        description="A month or week: start and end are wall-clock readings, which each store "
        "reads in its own zone (no offset); a range: UTC instants."
    )
    start: datetime
    end: datetime


class SlaSource(BaseModel):
    kind: Literal["partition", "computed"] = Field(
        description="partition: the month the `monthly_sla` asset saved, read without the "
        "stores' database; computed: computed for this request."
    )
    saved_at: datetime | None = Field(default=None, description="When the month was saved.")
    latest_poll: datetime = Field(description="The latest poll the period was cut at.")
    dagster_partition_url: str | None = Field(
        default=None, description="The saved month's partition of `monthly_sla` in the Dagster UI."
    )


class SlaSummaryValues(BaseModel):
    stores: int
    stores_below_target: int = Field(
        description="With business time and an availability under the target."
    )
    stores_without_business_time: int
    availability_pct: float | None = Field(
        description="The fleet's: all stores' uptime over all their business time, percent, "
        "unrounded (null: no business time)."
    )


class AvailabilityBin(BaseModel):
    lower: int = Field(description="Availability, percent, inclusive.")
    upper: int = Field(description="Exclusive, except 100 for the last bin.")
    stores: int


class SlaIncident(BaseModel):
    start: datetime = Field(description="UTC, cut at the period's start.")
    end: datetime = Field(description="UTC, cut at the period's end.")
    business_minutes: float = Field(description="Business time it covers, unrounded.")


class SlaRow(BaseModel):
    """A store's row of the SLA CSV, the same values as numbers (rounded as the CSV is: two
    decimals, half up from the exact value)."""

    store_id: str
    period_start: datetime = Field(description="UTC: the store's own start of the period.")
    period_end: datetime = Field(description="UTC: min(the period's end, the latest poll).")
    business_hours: float
    uptime_hours: float
    downtime_hours: float
    availability_pct: float | None = Field(description="Null without business time.")
    incidents: int
    longest_incident_minutes: float
    mean_time_to_recover_minutes: float | None = Field(description="Null without incidents.")
    target_met: bool | None = Field(description="Null without business time.")
    worst_incident: SlaIncident | None = Field(
        default=None, description="The longest incident (business minutes), the earliest of "
        "equals; not a CSV column."
    )


class SlaLinks(BaseModel):
    csv: str = Field(description="This period's CSV (the same query, without Accept JSON).")


_SLA_EXAMPLE = {
    "period": {"kind": "month", "name": "2023-01", "local": True,
               "start": "2023-01-01T00:00:00", "end": "2023-02-01T00:00:00"},
    "latest_poll": "2023-01-25T23:59:55.381532Z",
    "target_pct": 99.0,
    "source": {"kind": "partition", "saved_at": "2023-01-26T00:05:12Z",
               "latest_poll": "2023-01-25T23:59:55.381532Z",
               "dagster_partition_url": "http://127.0.0.1:3000/assets/monthly_sla"
                                        "?view=partitions&partition=2023-01"},
}


class SlaResponse(BaseModel):
    model_config = _example(
        **_SLA_EXAMPLE,
        summary={"stores": 1500, "stores_below_target": 730, "stores_without_business_time": 0,
                 "availability_pct": 94.35},
        bins=[{"lower": 95, "upper": 100, "stores": 612}],
        rows=[{
            "store_id": "1015372118842025109", "period_start": "2023-01-01T06:00:00Z",
            "period_end": "2023-01-25T23:59:55.381532Z", "business_hours": 594.0,
            "uptime_hours": 579.73, "downtime_hours": 14.27, "availability_pct": 97.6,
            "incidents": 1, "longest_incident_minutes": 856.41,
            "mean_time_to_recover_minutes": 856.41, "target_met": False,
            "worst_incident": {"start": "2023-01-21T14:02:10Z", "end": "2023-01-22T04:18:35Z",
                               "business_minutes": 856.414512},
        }],
        links={"csv": "/sla?month=2023-01&target=99.0"},
    )
    period: SlaPeriod
    latest_poll: datetime
    target_pct: float
    source: SlaSource
    summary: SlaSummaryValues
    bins: list[AvailabilityBin] = Field(
        description="Stores with business time by availability, 5 % bins."
    )
    rows: list[SlaRow] = Field(description="One per store, sorted by store_id (as text).")
    links: SlaLinks


class StoreSlaResponse(BaseModel):
    model_config = _example(
        **_SLA_EXAMPLE,
        row={
            "store_id": "1015372118842025109", "period_start": "2023-01-01T06:00:00Z",
            "period_end": "2023-01-25T23:59:55.381532Z", "business_hours": 594.0,
            "uptime_hours": 579.73, "downtime_hours": 14.27, "availability_pct": 97.6,
            "incidents": 1, "longest_incident_minutes": 856.41,
            "mean_time_to_recover_minutes": 856.41, "target_met": False,
        },
        incidents=[{"start": "2023-01-21T14:02:10Z", "end": "2023-01-22T04:18:35Z",
                    "business_minutes": 856.414512}],
    )
    period: SlaPeriod
    latest_poll: datetime
    target_pct: float
    source: SlaSource
    row: SlaRow
    incidents: list[SlaIncident] = Field(description="In order of start.")


class SlaMonth(BaseModel):
    month: str = Field(description="YYYY-MM.")
    saved: bool = Field(description="The `monthly_sla` asset saved it: answered from that file.")
    has_polls: bool = Field(description="Within the first and the latest poll stored (UTC).")


class SlaMonthsResponse(BaseModel):
    model_config = _example(
        months=[{"month": "2023-01", "saved": True, "has_polls": True}],
        latest_poll="2023-01-25T23:59:55.381532Z",
    )
    months: list[SlaMonth] = Field(description="Newest first.")
    latest_poll: datetime | None = Field(description="Null: no polls, or the database busy.")


# --- alerts (GET /alerts, GET /stores/{id}/alerts) -----------------------------------------

AlertState = Literal["open", "resolved"]


class AlertEvent(BaseModel):
    """One event of the alert in the outbox, and how far its delivery to the webhooks got."""

    event: Literal["opened", "resolved"]
    created_at: datetime = Field(description="When the evaluation wrote it (wall clock, UTC).")
    attempts: int = Field(description="Delivery rounds that posted it.")
    delivered: bool = Field(description="Every webhook acknowledged it.")
    dead: bool = Field(description="Given up: undelivered STOREMON_ALERT_RETRY_MAX_HOURS "
                       "after it was written.")
    next_attempt_at: datetime | None = Field(
        description="Not posted before then (null: delivered or dead)."
    )
    last_error: str | None = Field(
        default=None, description="The last failure, which may name a webhook's URL: only with "
        "the token (or when none is set)."
    )


class Alert(BaseModel):
    alert_id: str = Field(description="Made from the data at opening; never changes.")
    store_id: str
    state: AlertState
    down_since: datetime = Field(description="The down run's start (UTC, data time).")
    resolved_at: datetime | None = Field(description="The down run's end (null: open).")
    business_minutes_down: float = Field(
        description="Business time in the run, rounded half up to 2 decimals (as the events)."
    )
    timezone: str = Field(description="The store's zone (the default when it has none).")
    opened_as_of: datetime = Field(description="The latest poll of the evaluation that opened it.")
    resolved_as_of: datetime | None = Field(
        description="The latest poll of the evaluation that resolved it."
    )
    evaluated_as_of: datetime = Field(
        description="The latest poll of the last evaluation that updated it."
    )
    timeline_url: str = Field(
        description="The page's view of the store's week at the alert: as of `resolved_at`, "
        "or as of `evaluated_as_of` while open (GET /stores/{id}/timeline?as_of= the same)."
    )
    events: list[AlertEvent] = Field(description="Oldest first.")


class AlertCounts(BaseModel):
    open: int
    resolved: int


class AlertsResponse(BaseModel):
    model_config = _example(
        as_of="2023-03-07T18:00:00Z",
        counts={"open": 1, "resolved": 4},
        alerts=[{
            "alert_id": "5f0e3c1b9a2d4e67", "store_id": "1481966498820158979", "state": "open",
            "down_since": "2023-03-07T15:30:00Z", "resolved_at": None,
            "business_minutes_down": 150.0, "timezone": "America/Chicago",
            "opened_as_of": "2023-03-07T18:00:00Z", "resolved_as_of": None,
            "evaluated_as_of": "2023-03-07T18:00:00Z",
            "timeline_url": "/#store=1481966498820158979&as_of=2023-03-07T18%3A00%3A00Z",
            "events": [{"event": "opened", "created_at": "2024-05-01T09:30:02.481000Z",
                        "attempts": 1, "delivered": True, "dead": False,
                        "next_attempt_at": None, "last_error": None}],
        }],
    )
    as_of: datetime | None = Field(description="The latest poll loaded (null: none yet).")
    counts: AlertCounts = Field(
        description="Alerts in each state, of the store asked for (or all), whatever `state` "
        "lists."
    )
    alerts: list[Alert] = Field(description="Newest down run first.")
