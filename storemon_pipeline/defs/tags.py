"""Who launched a run, and its place in the run queue.

Every run carries ``storemon/trigger``: ``api`` (the REST facade), ``sensor``, ``schedule``,
``up`` (`storemon up` catching up) or ``ui`` (by hand in the Dagster UI: the named jobs have
it as a default tag; a run without the tag, such as a materialization or backfill from the
asset graph, which runs Dagster's implicit asset job, is read as ``ui`` too).

All runs that open DuckDB queue for the one slot of the ``duckdb`` pool; Dagster's queued run
coordinator dequeues by ``dagster/priority`` (higher first; equal priorities first in, first
out). A report someone is waiting for through the API goes first, then the hourly schedule,
then the rest (sensors, `storemon up`, the UI and its backfills).
"""

from __future__ import annotations

from typing import Literal

TRIGGER_TAG = "storemon/trigger"
PRIORITY_TAG = "dagster/priority"  # read by Dagster's QueuedRunCoordinator

Trigger = Literal["api", "sensor", "schedule", "up", "ui"]
PRIORITY: dict[str, int] = {"api": 10, "schedule": 5, "sensor": 0, "up": 0, "ui": 0}
UNTAGGED = "ui"
# A report run with this tag (the sensor's, after an ingest) computes whole only the partitions
# the history lacks, holds as of another instant or withheld; the others change only for the
# stores whose data changed (engine/history.py: update_history).
RECOMPUTE_TAG = "storemon/recompute"
RECOMPUTE_STALE = "stale"


def trigger_tags(trigger: Trigger) -> dict[str, str]:
    """The tags of a run launched by ``trigger``."""
    return {TRIGGER_TAG: trigger, PRIORITY_TAG: str(PRIORITY[trigger])}


def trigger_of(tags: dict[str, str]) -> str:
    """Who launched a run, from its tags (no tag: by hand in the UI)."""
    return tags.get(TRIGGER_TAG, UNTAGGED)
