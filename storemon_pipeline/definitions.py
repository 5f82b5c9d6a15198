"""The Dagster code location of storemon (loaded by workspace.yaml)."""

from __future__ import annotations

import dagster as dg

from storemon_pipeline.defs.assets import (
    business_windows,
    ingest,
    monthly_sla,
    sla_days,
    store_alerts,
    uptime_report,
)
from storemon_pipeline.defs.checks import report_checks, sla_checks
from storemon_pipeline.defs.jobs import (
    ingest_job,
    monthly_sla_job,
    refresh_job,
    uptime_report_job,
)
from storemon_pipeline.defs.resources import StoremonState
from storemon_pipeline.defs.schedules import hourly_uptime_report, monthly_sla_schedule
from storemon_pipeline.defs.sensors import build_sensors
from storemon_pipeline.defs.sharded import build_sharded_ingest, build_sharded_report
from storemon_pipeline.distributed import celery_config
from storemon_pipeline.settings import Settings, get_settings


def build_defs(settings: Settings | None = None) -> dg.Definitions:
    """The definitions for one state folder (tests build them for a temporary one).

    By default runs execute in one process, step after step: every step opens the same DuckDB
    file, which one process at a time may write. With shards, each shard's steps write its own
    file, and the Celery executor may run them on several workers at once.
    """
    settings = settings or get_settings()
    if settings.shards > 1:
        feeds = [build_sharded_ingest(settings.shards), build_sharded_report(settings.shards)]
    else:  # the alerts are kept in one DuckDB file
        feeds = [ingest, sla_days, uptime_report, store_alerts]
    return dg.Definitions(
        assets=[*feeds, business_windows, monthly_sla],
        asset_checks=[*report_checks, *sla_checks],
        jobs=[ingest_job, uptime_report_job, refresh_job, monthly_sla_job],
        sensors=build_sensors(settings.sensor_interval_seconds, alerts=settings.shards == 1),
        schedules=[hourly_uptime_report, monthly_sla_schedule],
        resources={"storemon": StoremonState.from_settings(settings)},
        executor=build_executor(settings),
    )


def build_executor(settings: Settings) -> dg.ExecutorDefinition:
    """In-process by default; with STOREMON_EXECUTOR=celery, Dagster's Celery executor on the
    broker STOREMON_REDIS_URL (its workers: `storemon up --executor celery`)."""
    if settings.executor != "celery":
        return dg.in_process_executor
    from dagster_celery import celery_executor

    return celery_executor.configured(celery_config(settings))


defs = build_defs()
