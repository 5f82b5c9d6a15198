"""The asset keys, in a module of their own: the partitions' helpers, the jobs and the sensors
name the assets without importing their definitions (no import circle through assets.py)."""

from __future__ import annotations

import dagster as dg

POLLS = dg.AssetKey("polls")
BUSINESS_HOURS = dg.AssetKey("business_hours")
SPECIAL_HOURS = dg.AssetKey("special_hours")
TIMEZONES = dg.AssetKey("timezones")
QUARANTINE = dg.AssetKey("quarantine")
WINDOWS = dg.AssetKey("business_windows")
REPORT = dg.AssetKey("uptime_report")
SLA_DAYS = dg.AssetKey("sla_days")
MONTHLY_SLA = dg.AssetKey("monthly_sla")
STORE_ALERTS = dg.AssetKey("store_alerts")

# The ingest's assets, one per feed table. Selected by key: with shards, the same keys are
# graph-backed assets (defs/sharded.py).
INGEST_KEYS = (POLLS, BUSINESS_HOURS, SPECIAL_HOURS, TIMEZONES, QUARANTINE)
