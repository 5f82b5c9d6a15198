"""Named jobs: what the sensors, the schedule, `storemon up` and the REST facade launch."""

from __future__ import annotations

import dagster as dg

from storemon_pipeline.defs.keys import INGEST_KEYS, MONTHLY_SLA, REPORT, SLA_DAYS, WINDOWS
from storemon_pipeline.defs.tags import trigger_tags

# A run launched by hand from the UI's launchpad says so; the API, sensors, schedule and
# `storemon up` give tags of their own, which take precedence over the job's.
BY_HAND = trigger_tags("ui")

ingest_job = dg.define_asset_job(
    "ingest_job",
    # the alerts' group is empty with shards (the alerts are kept in one DuckDB file); with
    # shards the days are settled by the shards' ingest steps (an output of the ingest)
    selection=dg.AssetSelection.assets(*INGEST_KEYS, SLA_DAYS) | dg.AssetSelection.groups("alerts"),
    tags=BY_HAND,
    description="Load CSV files into the feed tables (config: paths; default data/ + incoming/), "
    "settle the local days that have ended, then evaluate the stores' alerts as of the latest "
    "poll.",
)

uptime_report_job = dg.define_asset_job(
    "uptime_report_job",
    selection=dg.AssetSelection.assets(REPORT),
    tags=BY_HAND,
    description="The uptime report of one hourly partition, its checks, and its CSV file "
    "reports/<run id>.csv. The REST facade launches it for the latest poll's partition.",
)

refresh_job = dg.define_asset_job(
    "refresh_job",
    selection=dg.AssetSelection.assets(WINDOWS, REPORT),
    tags=BY_HAND,
    description="Rebuild the business windows, then the report of one partition: what follows "
    "an ingest.",
)

monthly_sla_job = dg.define_asset_job(
    "monthly_sla_job",
    selection=dg.AssetSelection.assets(MONTHLY_SLA),  # with its check
    tags=BY_HAND,
    description="One month's SLA (partition YYYY-MM), saved to sla/month-<M>.duckdb and "
    "written to reports/sla-<M>.csv, and its check (the month is the sum of its days).",
)
