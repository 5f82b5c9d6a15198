"""Alerts as a resource (docs/semantics.md §2.18): the alerts the evaluations after the ingests
decided, open and resolved, newest first, each with its events' delivery to the webhooks.

Nothing is decided here: the alerts are read as the last evaluation left them, from the stores'
database, read-only (engine/alerts.py, engine/delivery.py), held open by the process's readers
(engine/readers.py). While a run writes that file the request waits ``READ_WAIT_SECONDS``, then
answers 503. A state without a database yet has no
alerts; a failed delivery's error (which may name a webhook's URL) only goes to a caller with
the token.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from urllib.parse import urlencode

import duckdb
import pandas as pd

from storemon_api.errors import BadAlertQuery, MalformedStoreId, Unavailable, UnknownStore
from storemon_api.models import Alert, AlertCounts, AlertEvent, AlertsResponse
from storemon_pipeline.engine.alerts import (
    ALERT_STATES,
    alert_counts,
    alerts_kept,
    read_alerts,
    store_polled,
)
from storemon_pipeline.engine.delivery import read_events
from storemon_pipeline.engine.ingest import is_valid_store_id
from storemon_pipeline.engine.instants import as_aware_utc
from storemon_pipeline.engine.readers import Readers
from storemon_pipeline.engine.report import latest_poll
from storemon_pipeline.engine.shards import shard_of
from storemon_pipeline.engine.zones import DEFAULT_TIMEZONE
from storemon_pipeline.settings import Settings

READ_WAIT_SECONDS = 10.0


@dataclass
class _Found:
    """What one DuckDB file holds for the request."""

    as_of: datetime | None = None
    known: bool = False  # the store asked for was polled (always True without one)
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(ALERT_STATES, 0))
    alerts: list[Alert] = field(default_factory=list)


def check_alert_query(state: str | None, store_id: str | None) -> None:
    """422 for a state that does not exist or a store id the ingest would reject."""
    if state is not None and state not in ALERT_STATES:
        raise BadAlertQuery(
            f"state must be one of {', '.join(ALERT_STATES)}, not {state!r}"
        )
    if store_id is not None and not is_valid_store_id(store_id):
        raise MalformedStoreId()


def timeline_url(store_id: str, as_of: datetime) -> str:
    """The page's view of the store's week as of ``as_of`` (naive: UTC), the link the page
    makes (``#store=<id>&as_of=<ISO>``)."""
    return "/#" + urlencode({"store": store_id, "as_of": _iso_z(as_of)})


class AlertService:
    def __init__(self, state: Settings, readers: Readers) -> None:
        self.state = state
        self.readers = readers

    def fleet(
        self, state: str | None, store_id: str | None, *, with_errors: bool
    ) -> AlertsResponse:
        """The alerts of every store (or of one), newest first; none before any data."""
        check_alert_query(state, store_id)
        paths = self.state.shard_paths if store_id is None else [self._shard_path(store_id)]
        found = [
            self._read(path, state, store_id, with_errors) for path in paths if path.exists()
        ]
        return _response(found)

    def store(self, store_id: str, state: str | None, *, with_errors: bool) -> AlertsResponse:
        """One store's alerts, newest first; 404 when no poll of it was ever loaded."""
        check_alert_query(state, store_id)
        path = self._shard_path(store_id)
        found = self._read(path, state, store_id, with_errors) if path.exists() else _Found()
        if not found.known:
            raise UnknownStore(f"no poll of store {store_id} was ever loaded")
        return _response([found])

    def _shard_path(self, store_id: str) -> Path:
        paths = self.state.shard_paths
        return paths[shard_of(store_id, len(paths))]

    def _read(
        self, path: Path, state: str | None, store_id: str | None, with_errors: bool
    ) -> _Found:
        try:
            with self.readers.connection(path, wait_seconds=READ_WAIT_SECONDS) as con:
                found = _Found(as_of=latest_poll(con))
                found.known = store_id is None or store_polled(con, store_id)
                if not found.known or not alerts_kept(con):
                    return found
                frame = read_alerts(con, state, store_id, DEFAULT_TIMEZONE)
                found.counts = alert_counts(con, store_id)
                if frame.empty:
                    return found
                ids = frame["alert_id"].tolist()
                events = read_events(con, ids)
        except duckdb.IOException as exc:
            raise Unavailable("the store database is busy; retry in a few seconds") from exc
        by_alert: dict[str, list[AlertEvent]] = {}
        for row in events.itertuples(index=False):
            by_alert.setdefault(row.alert_id, []).append(_event(row, with_errors))
        found.alerts = [
            _alert(row, by_alert.get(row.alert_id, []))
            for row in frame.itertuples(index=False)
        ]
        return found


def _response(found: Sequence[_Found]) -> AlertsResponse:
    """One answer from the files read (one per shard): newest down run first, as in each."""
    polls = [f.as_of for f in found if f.as_of is not None]
    alerts = sorted(
        (alert for f in found for alert in f.alerts),
        key=lambda a: (a.store_id, a.alert_id),
    )
    alerts.sort(key=lambda a: a.down_since, reverse=True)
    return AlertsResponse(
        as_of=as_aware_utc(max(polls)) if polls else None,
        counts=AlertCounts(
            **{state: sum(f.counts[state] for f in found) for state in ALERT_STATES}
        ),
        alerts=alerts,
    )


def _alert(row, events: list[AlertEvent]) -> Alert:
    resolved_at = _instant(row.resolved_at)
    evaluated_as_of = _instant(row.evaluated_as_of)
    return Alert(
        alert_id=row.alert_id,
        store_id=row.store_id,
        state=row.state,
        down_since=_instant(row.down_since),
        resolved_at=resolved_at,
        business_minutes_down=row.business_minutes_rounded,
        timezone=row.timezone,
        opened_as_of=_instant(row.opened_as_of),
        resolved_as_of=_instant(row.resolved_as_of),
        evaluated_as_of=evaluated_as_of,
        # the week that holds the alert: as of the run's end (as the SLA view links a store at
        # its worst incident), or while open as of the evaluation that last saw it down
        timeline_url=timeline_url(row.store_id, resolved_at or evaluated_as_of),
        events=events,
    )


def _event(row, with_errors: bool) -> AlertEvent:
    delivered = not pd.isna(row.delivered_at)
    dead = not pd.isna(row.dead_at)
    error = None if pd.isna(row.last_error) else row.last_error
    return AlertEvent(
        event=row.event,
        created_at=_instant(row.created_at),
        attempts=int(row.attempts),
        delivered=delivered,
        dead=dead,
        next_attempt_at=None if delivered or dead else _instant(row.next_attempt_at),
        last_error=error if with_errors else None,
    )


def _instant(value: object) -> datetime | None:
    if value is None or pd.isna(value):
        return None
    return as_aware_utc(pd.Timestamp(value).to_pydatetime())


def _iso_z(instant: datetime) -> str:
    """ISO-8601 UTC with ``Z``, as the answers write their instants."""
    return as_aware_utc(instant).isoformat().replace("+00:00", "Z")
