"""The Dagster code location of storemon (loaded by workspace.yaml)."""

from __future__ import annotations

import dagster as dg

from storemon_pipeline.defs.assets import business_windows, ingest, uptime_report
from storemon_pipeline.defs.checks import report_checks
from storemon_pipeline.defs.jobs import (
    ingest_job,
    refresh_job,
    uptime_report_job,
)
from storemon_pipeline.defs.resources import StoremonState
from storemon_pipeline.defs.schedules import hourly_uptime_report
from storemon_pipeline.defs.sensors import build_sensors
from storemon_pipeline.settings import Settings, get_settings


def build_defs(settings: Settings | None = None) -> dg.Definitions:
    """The definitions for one state folder (tests build them for a temporary one).

    Runs execute in one process, step after step: every step opens the same DuckDB file, which
    one process at a time may write.
    """
    settings = settings or get_settings()
    return dg.Definitions(
        assets=[ingest, business_windows, uptime_report],
        asset_checks=report_checks,
        jobs=[ingest_job, uptime_report_job, refresh_job],
        sensors=build_sensors(settings.sensor_interval_seconds),
        schedules=[hourly_uptime_report],
        resources={"storemon": StoremonState.from_settings(settings)},
        executor=dg.in_process_executor,
    )


defs = build_defs()
