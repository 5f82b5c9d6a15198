"""An hourly report for the hour that just ended; off by default (the sample is historical)."""


from datetime import timedelta

import dagster as dg

from storemon_pipeline.defs.jobs import uptime_report_job
from storemon_pipeline.defs.partitions import report_partitions
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
