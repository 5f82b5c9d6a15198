"""Stores as a resource: what the report history says of one store, and how its numbers were
made; and the fleet's history.

The histories are read from the file that report runs write (engine/history.py), never
recomputed: a run holds that file only while it inserts a partition's rows, so a read waits a
moment at most. A timeline is computed for its one store from the store's database, read-only
(engine/explain.py), held open by the process's readers between requests and let go whenever
a run wants to write it (engine/readers.py); timelines asked at the same time are computed
together. While a run writes the file, a timeline waits ``READ_WAIT_SECONDS``, then answers
503.
"""

from __future__ import annotations

from datetime import datetime

import duckdb
import pandas as pd

from storemon_api.errors import MalformedStoreId, Unavailable, UnknownStore
from storemon_api.models import (
    FleetHistoryResponse,
    FleetHistoryRow,
    HistoryRow,
    StoreHistoryResponse,
    StoreTimelineResponse,
)
from storemon_pipeline.engine.explain import (
    MalformedStoreIdError,
    StoreTimelines,
    UnknownStoreError,
)
from storemon_pipeline.engine.history import partition_key, read_fleet_history, read_store_history
from storemon_pipeline.engine.ingest import is_valid_store_id
from storemon_pipeline.engine.instants import as_aware_utc, as_naive_utc
from storemon_pipeline.engine.readers import Readers
from storemon_pipeline.engine.report import NoPollsError
from storemon_pipeline.settings import Settings

READ_WAIT_SECONDS = 10.0
SHARES = ("uptime_share_hour", "uptime_share_day", "uptime_share_week")


class StoreService:
    def __init__(self, state: Settings, dagster_url: str, readers: Readers) -> None:
        self.state = state
        self.dagster_url = dagster_url
        self.timelines = StoreTimelines(
            readers, state.state_dir, state.shard_paths, state.history_path
        )

    def history(
        self, store_id: str, since: datetime | None, until: datetime | None
    ) -> StoreHistoryResponse:
        if not is_valid_store_id(store_id):
            raise MalformedStoreId()
        try:
            found = read_store_history(
                self.state.history_path,
                store_id,
                since=None if since is None else as_naive_utc(since),
                until=None if until is None else as_naive_utc(until),
                wait_seconds=READ_WAIT_SECONDS,
            )
        except duckdb.IOException as exc:
            raise Unavailable("the report history is busy; retry in a few seconds") from exc
        if not found.known:
            raise UnknownStore(f"no report partition holds store {store_id}")
        return StoreHistoryResponse(
            store_id=store_id,
            rows=[
                HistoryRow(
                    partition=partition_key(row.partition_hour),
                    as_of=as_aware_utc(row.as_of.to_pydatetime()),
                    **{name: float(getattr(row, name)) for name in HistoryRow.VALUES},
                )
                for row in found.rows.itertuples(index=False)
            ],
        )

    def timeline(self, store_id: str, as_of: datetime | None) -> StoreTimelineResponse:
        try:
            timeline, source = self.timelines.timeline(
                store_id, as_of, wait_seconds=READ_WAIT_SECONDS
            )
        except MalformedStoreIdError as exc:
            raise MalformedStoreId() from exc
        except (UnknownStoreError, NoPollsError) as exc:
            raise UnknownStore(str(exc)) from exc
        except duckdb.IOException as exc:
            raise Unavailable("the store database is busy; retry in a few seconds") from exc
        return StoreTimelineResponse.model_validate(timeline.as_json(source, self.dagster_url))

    def fleet_history(
        self, since: datetime | None, until: datetime | None
    ) -> FleetHistoryResponse:
        try:
            rows = read_fleet_history(
                self.state.history_path,
                since=None if since is None else as_naive_utc(since),
                until=None if until is None else as_naive_utc(until),
                wait_seconds=READ_WAIT_SECONDS,
            )
        except duckdb.IOException as exc:
            raise Unavailable("the report history is busy; retry in a few seconds") from exc
        return FleetHistoryResponse(
            rows=[
                FleetHistoryRow(
                    partition=partition_key(row.partition_hour),
                    as_of=as_aware_utc(row.as_of.to_pydatetime()),
                    stores=int(row.stores),
                    **{name: _share(getattr(row, name)) for name in SHARES},
                )
                for row in rows.itertuples(index=False)
            ]
        )


def _share(value: float) -> float | None:
    return None if pd.isna(value) else float(value)
