"""An hourly report for the hour that just ended; off by default (the sample is historical)."""


from datetime import timedelta

import dagster as dg

from storemon_pipeline.defs.jobs import uptime_report_job
from storemon_pipeline.defs.partitions import partition_key_for
from storemon_pipeline.engine.instants import as_naive_utc


@dg.schedule(
    job=uptime_report_job,
    cron_schedule="5 * * * *",
    execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.STOPPED,
)
def hourly_uptime_report(context: dg.ScheduleEvaluationContext) -> dg.RunRequest:
    """At five past each hour, the report partition of the hour that just ended (its as-of is
    the end of that hour, or the latest poll if the feed is behind)."""
    tick = as_naive_utc(context.scheduled_execution_time)
    partition = partition_key_for(tick - timedelta(hours=1))
    return dg.RunRequest(run_key=partition, partition_key=partition)
