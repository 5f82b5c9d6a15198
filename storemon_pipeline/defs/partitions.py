"""Report partitions: one per UTC hour that holds polls (docs/semantics.md §2.12).

Partition H holds the report as of ``min(end of H, latest poll)``: the partition holding the
latest poll is "the report as of the latest poll", and the older ones are each store's uptime
history, hour by hour. The keys are added by the ingest for the hours its polls fall in (and by
`storemon up` for data loaded from the command line), so the UI lists the hours that hold data,
not every hour since some start date.

SLA months (``sla_months``): one per local calendar month ``YYYY-MM`` that holds polls in some
store's zone, added wherever report partitions are (``add_sla_months``).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta

import dagster as dg

from storemon_pipeline.defs.keys import MONTHLY_SLA, REPORT
from storemon_pipeline.engine.history import partition_hour, partition_key

report_partitions = dg.DynamicPartitionsDefinition(name="report_hours")
sla_months = dg.DynamicPartitionsDefinition(name="sla_months")

# A store's local month starts up to 14 h before the UTC month (UTC+14) or 12 h after it
# (UTC-12): a poll's hour is in the local months of the hours this far either side of it.
ZONE_REACH = timedelta(hours=14)

# Dagster's run tags for a run over a range of partitions (a single-run backfill).
RANGE_START_TAG = "dagster/asset_partition_range_start"
RANGE_END_TAG = "dagster/asset_partition_range_end"


def partition_window(key: str) -> tuple[datetime, datetime]:
    """The partition's hour as naive UTC instants [start, end)."""
    start = partition_hour(key)
    return start, start + timedelta(hours=1)


def add_report_partitions(instance: dg.DagsterInstance, hours: Iterable[datetime]) -> list[str]:
    """Add the partitions of these hours that do not exist yet, in time order; returns them."""
    existing = set(instance.get_dynamic_partitions(report_partitions.name))
    new = sorted({partition_key(hour) for hour in hours} - existing)
    if new:
        instance.add_dynamic_partitions(report_partitions.name, new)
    return new


def contiguous_ranges(instance: dg.DagsterInstance, keys: Iterable[str]) -> list[list[str]]:
    """The keys grouped into runs of neighbours in the partitions' order (what one single-run
    backfill can materialize), oldest first."""
    existing = instance.get_dynamic_partitions(report_partitions.name)
    order = {key: i for i, key in enumerate(existing)}
    ranges: list[list[str]] = []
    for key in sorted((k for k in set(keys) if k in order), key=order.__getitem__):
        if ranges and order[ranges[-1][-1]] == order[key] - 1:
            ranges[-1].append(key)
        else:
            ranges.append([key])
    return ranges


def range_tags(keys: list[str]) -> dict[str, str]:
    """Tags of a run over contiguous partitions: one key, or a range."""
    if len(keys) == 1:
        return {"dagster/partition": keys[0]}
    return {RANGE_START_TAG: keys[0], RANGE_END_TAG: keys[-1]}


def is_materialized(instance: dg.DagsterInstance, partition: str, after: float = 0.0) -> bool:
    """Whether the report partition was materialized (after the given epoch seconds)."""
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=REPORT, asset_partitions=[partition]),
        limit=1,
    ).records
    return bool(records) and records[0].timestamp > after


def unmaterialized_partitions(instance: dg.DagsterInstance) -> list[str]:
    """The report partitions that were never materialized (what `storemon up` catches up on)."""
    done = instance.get_materialized_partitions(REPORT)
    return [
        key for key in instance.get_dynamic_partitions(report_partitions.name) if key not in done
    ]


def month_key(instant: datetime) -> str:
    """The month ``YYYY-MM`` of an instant (as read on whatever clock it is given in)."""
    return f"{instant.year:04d}-{instant.month:02d}"


def add_sla_months(instance: dg.DagsterInstance, hours: Iterable[datetime]) -> list[str]:
    """Add the SLA months these poll hours fall in, in some store's zone (the months of
    ``h - 14 h`` and ``h + 14 h``), that do not exist yet, in time order; returns them."""
    months = {month_key(hour + reach) for hour in hours for reach in (-ZONE_REACH, ZONE_REACH)}
    new = sorted(months - set(instance.get_dynamic_partitions(sla_months.name)))
    if new:
        instance.add_dynamic_partitions(sla_months.name, new)
    return new


def unmaterialized_sla_months(instance: dg.DagsterInstance) -> list[str]:
    """The SLA months that were never materialized (what `storemon up` catches up on)."""
    done = instance.get_materialized_partitions(MONTHLY_SLA)
    return [key for key in instance.get_dynamic_partitions(sla_months.name) if key not in done]
