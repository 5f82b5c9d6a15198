"""Stores as a resource: what the report history says of one store.

Read from the history file that report runs write (engine/history.py), never recomputed. A run
holds that file only while it inserts a partition's rows, so a read waits a moment at most.
"""

from __future__ import annotations

from datetime import datetime

import duckdb

from storemon_api.errors import MalformedStoreId, Unavailable, UnknownStore
from storemon_api.models import HistoryRow, StoreHistoryResponse
from storemon_pipeline.engine.history import partition_key, read_store_history
from storemon_pipeline.engine.ingest import is_valid_store_id
from storemon_pipeline.engine.instants import as_aware_utc, as_naive_utc
from storemon_pipeline.settings import Settings

READ_WAIT_SECONDS = 10.0


class StoreService:
    def __init__(self, state: Settings) -> None:
        self.state = state

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
