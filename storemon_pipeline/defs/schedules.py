"""An hourly report for the hour that just ended, off by default (the sample is historical); the
SLA of the month that just ended, on by default."""


from datetime import datetime, timedelta

import dagster as dg

from storemon_pipeline.defs.jobs import monthly_sla_job, uptime_report_job
from storemon_pipeline.defs.partitions import month_key, report_partitions, sla_months
from storemon_pipeline.defs.tags import trigger_tags
from storemon_pipeline.engine.history import partition_key
from storemon_pipeline.engine.instants import as_naive_utc


@dg.schedule(
    job=uptime_report_job,
    cron_schedule="5 * * * *",
    execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.STOPPED,
)
def hourly_uptime_report(context: dg.ScheduleEvaluationContext) -> dg.RunRequest | dg.SkipReason:
    """At five past each hour, the report partition of the hour that just ended (its as-of is
    the end of that hour). Partitions exist for the hours that hold polls: an hour without any
    is skipped, with the reason (the feed is behind or has stopped)."""
    tick = as_naive_utc(context.scheduled_execution_time)
    partition = partition_key(tick - timedelta(hours=1))
    if not context.instance.has_dynamic_partition(report_partitions.name, partition):
        return dg.SkipReason(f"no polls in hour {partition} (yet): nothing to report")
    return dg.RunRequest(
        run_key=partition, partition_key=partition, tags=trigger_tags("schedule")
    )


def month_before(instant: datetime) -> str:
    """The month ``YYYY-MM`` before the month of ``instant`` (UTC)."""
    return month_key(instant.replace(day=1) - timedelta(days=1))


@dg.schedule(
    job=monthly_sla_job,
    cron_schedule="5 0,12 1 * *",
    execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.RUNNING,
)
def monthly_sla_schedule(context: dg.ScheduleEvaluationContext) -> dg.RunRequest | dg.SkipReason:
    """The SLA of the month that just ended, twice on the 1st. Each store's month ends at
    midnight on its own clock: at 00:05 UTC (the first hour after the month's end in UTC) the
    stores at UTC and east of it have closed their month, and at 12:05 UTC every zone down to
    UTC-12 has (a store further west than the latest poll is still counted up to it). The
    second run settles the month for all; the first gives the eastern stores theirs half a day
    earlier. Run key ``<month>@<hour>``: one run per tick. A month without its partition (no
    polls in it) is skipped, with the reason."""
    tick = as_naive_utc(context.scheduled_execution_time)
    month = month_before(tick)
    if not context.instance.has_dynamic_partition(sla_months.name, month):
        return dg.SkipReason(f"no polls in month {month}: no SLA to settle")
    return dg.RunRequest(
        run_key=f"{month}@{tick.hour:02d}", partition_key=month, tags=trigger_tags("schedule")
    )
