"""SLA periods as a resource (docs/semantics.md §2.17): every store's availability over a month,
an ISO week or a UTC range, as the CSV of ``storemon sla`` or as JSON; one store's row with its
incidents; the months there is something to ask for.

A month the ``monthly_sla`` asset saved (``saved_month_path``) is answered from that file alone,
with the requested target applied to it: a run writing the stores' database does not hold it up.
Any other period is computed for the request on the stores' database, read-only, through the
process's readers (engine/readers.py; one store's period on its own shard's file): while a run
writes that file the request waits ``READ_WAIT_SECONDS``, then answers 503.
"""

from __future__ import annotations

import csv
import io
import math
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta
from pathlib import Path

import duckdb
import pandas as pd

from storemon_api.errors import BadSlaQuery, MalformedStoreId, NoPolls, Unavailable, UnknownStore
from storemon_api.models import (
    AvailabilityBin,
    SlaIncident,
    SlaMonth,
    SlaMonthsResponse,
    SlaPeriod,
    SlaPeriodKind,
    SlaResponse,
    SlaRow,
    SlaSource,
    SlaSummaryValues,
    StoreSlaResponse,
)
from storemon_pipeline.engine.ingest import is_valid_store_id
from storemon_pipeline.engine.instants import as_aware_utc
from storemon_pipeline.engine.readers import Readers
from storemon_pipeline.engine.report import NoPollsError, latest_poll
from storemon_pipeline.engine.shards import shard_of
from storemon_pipeline.engine.sla import (
    MONTH_PATTERN,
    Period,
    PeriodError,
    apply_target,
    compute_sla,
    export_sla_csv,
    keep_sla_stores,
    load_sla,
    poll_span,
    requested_period,
    saved_month_path,
    sla_database,
    sla_incident_frame,
    sla_summary,
    target_millionths,
)
from storemon_pipeline.engine.state import read_latest_poll
from storemon_pipeline.settings import Settings

READ_WAIT_SECONDS = 10.0
MONTHLY_SLA_ASSET = "monthly_sla"  # storemon_pipeline.defs.keys.MONTHLY_SLA
BIN_WIDTH = 5


@dataclass(frozen=True)
class SlaQuery:
    """A checked request: the period, its kind, the target, the stores (None: all)."""

    period: Period
    kind: SlaPeriodKind
    target_pct: float
    store_ids: tuple[str, ...] | None = None

    def for_stores(self, store_ids: Sequence[str] | None) -> SlaQuery:
        """The same query for some stores only (None: all); 422 for a malformed store id."""
        for store_id in store_ids or ():
            if not is_valid_store_id(store_id):
                raise MalformedStoreId()
        return replace(self, store_ids=tuple(store_ids) if store_ids else None)

    @property
    def file_name(self) -> str:
        """sla-2023-01.csv, sla-2023-W03.csv, sla-20230120T000000-20230125T000000.csv (as the
        CLI names its CSV)."""
        p = self.period
        name = p.name if p.local else f"{p.start:%Y%m%dT%H%M%S}-{p.end:%Y%m%dT%H%M%S}"
        return f"sla-{name}.csv"


def parse_sla_query(
    state: Settings,
    since: datetime | None,
    until: datetime | None,
    month: str | None,
    week: str | None,
    target_pct: float | None,
) -> SlaQuery:
    """The period and target a request asks for, or BadSlaQuery (422) saying what is wrong; the
    same rules as ``storemon sla``, and no period longer than the retention."""
    target = state.sla_target_pct if target_pct is None else target_pct
    try:
        if not math.isfinite(target):
            raise PeriodError(f"a target is a percentage within 0-100, not {target!r}")
        target_millionths(target)
        period = requested_period(since, until, month, week)
    except PeriodError as exc:
        raise BadSlaQuery(str(exc)) from exc
    kind: SlaPeriodKind = (
        "month" if month is not None else "week" if week is not None else "range"
    )
    retention = state.retention_days
    if retention is not None and period.end - period.start > timedelta(days=retention):
        raise BadSlaQuery(
            f"the period {period.name} is longer than the {retention} days of polls kept "
            "(STOREMON_RETENTION_DAYS): ask for a shorter one"
        )
    return SlaQuery(period, kind, float(target))


class SlaService:
    def __init__(self, state: Settings, dagster_url: str | None, readers: Readers) -> None:
        self.state = state
        self.dagster_url = dagster_url
        self.readers = readers

    def csv(self, query: SlaQuery) -> bytes:
        """Exactly the CSV ``storemon sla`` writes for this query."""
        with self._results(query, query.store_ids) as (con, _source):
            return _csv_bytes(con)

    def fleet(self, query: SlaQuery, csv_url: str) -> SlaResponse:
        with self._results(query, query.store_ids) as (con, source):
            rows = _rows(_csv_bytes(con), _worst_incidents(sla_incident_frame(con)))
            summary = sla_summary(con)
        return SlaResponse(
            **self._head(query, source),
            summary=SlaSummaryValues(**vars(summary)),
            bins=_bins(rows),
            rows=rows,
            links={"csv": csv_url},
        )

    def store(self, store_id: str, query: SlaQuery) -> StoreSlaResponse:
        if not is_valid_store_id(store_id):
            raise MalformedStoreId()
        with self._results(query, [store_id]) as (con, source):
            incidents = _incidents(sla_incident_frame(con, 0, [store_id]))
            rows = _rows(_csv_bytes(con), {store_id: _worst(incidents)})
        if not rows:
            raise UnknownStore(
                f"no poll of store {store_id} at or before the end of {query.period.name}"
            )
        return StoreSlaResponse(
            **self._head(query, source), row=rows[0], incidents=incidents
        )

    def months(self) -> SlaMonthsResponse:
        """The saved months and the months the polls span (UTC), newest first. While a run
        writes the database, the saved months and the latest poll's month only."""
        saved = {
            path.name[len("month-"):-len(".duckdb")]
            for path in self.state.sla_dir.glob("month-*.duckdb")
        }
        saved = {month for month in saved if MONTH_PATTERN.fullmatch(month)}
        span = None
        try:
            if all(path.exists() for path in self.state.shard_paths):
                spans = []
                for path in self.state.shard_paths:
                    with self.readers.connection(path, wait_seconds=1.0) as con:
                        spans.append(poll_span(con))
                found = [found for found in spans if found is not None]
                if found:
                    span = (min(first for first, _ in found), max(last for _, last in found))
        except duckdb.IOException:
            latest = read_latest_poll(self.state.state_dir)
            span = None if latest is None else (latest, latest)
        polled = set() if span is None else set(_months_between(*span))
        return SlaMonthsResponse(
            months=[
                SlaMonth(month=month, saved=month in saved, has_polls=month in polled)
                for month in sorted(saved | polled, reverse=True)
            ],
            latest_poll=None if span is None else as_aware_utc(span[1]),
        )

    def _head(self, query: SlaQuery, source: SlaSource) -> dict[str, object]:
        p = query.period
        bound = (lambda t: t) if p.local else as_aware_utc
        return {
            "period": SlaPeriod(
                kind=query.kind, name=p.name, local=p.local, start=bound(p.start),
                end=bound(p.end),
            ),
            "latest_poll": source.latest_poll,
            "target_pct": query.target_pct,
            "source": source,
        }

    def _partition_url(self, month: str) -> str | None:
        if self.dagster_url is None:
            return None
        return (
            f"{self.dagster_url}/assets/{MONTHLY_SLA_ASSET}?view=partitions&partition={month}"
        )

    @contextmanager
    def _results(
        self, query: SlaQuery, store_ids: Sequence[str] | None
    ) -> Iterator[tuple[duckdb.DuckDBPyConnection, SlaSource]]:
        """A connection holding the query's ``sla_results``: the saved month, or computed."""
        state = self.state
        saved_path = (
            saved_month_path(state.sla_dir, query.period.name) if query.kind == "month" else None
        )
        if saved_path is not None and saved_path.exists():
            con, saved = load_sla(saved_path, state.duckdb_limits)
            try:
                apply_target(con, query.target_pct)
                if store_ids is not None:
                    keep_sla_stores(con, store_ids)
                yield con, SlaSource(
                    kind="partition", saved_at=as_aware_utc(saved.saved_at),
                    latest_poll=as_aware_utc(saved.latest_poll),
                    dagster_partition_url=self._partition_url(query.period.name),
                )
            finally:
                con.close()
            return
        if not all(path.exists() for path in state.shard_paths):
            raise NoPolls("no polls are loaded yet: ingest a store-status file first")
        try:
            with self._stores_database(store_ids) as (con, latest):
                try:
                    run = compute_sla(
                        con, [query.period], store_ids, target_pct=query.target_pct,
                        latest=latest,
                    )
                except NoPollsError as exc:
                    raise NoPolls(str(exc)) from exc
                yield con, SlaSource(kind="computed", latest_poll=as_aware_utc(run.latest_poll))
        except duckdb.IOException as exc:
            raise Unavailable("the store database is busy; retry in a few seconds") from exc

    @contextmanager
    def _stores_database(
        self, store_ids: Sequence[str] | None
    ) -> Iterator[tuple[duckdb.DuckDBPyConnection, datetime | None]]:
        """Where to compute the stores' periods, and the latest poll to cut them at (None: the
        database's own): one store on its own file (with shards, cut at the newest poll of all
        of them); every store on the one file, or on all the shards seen as one (which
        attaches them: the readers lend them meanwhile)."""
        paths = self.state.shard_paths
        if store_ids is not None and len(store_ids) == 1:
            latest = None if len(paths) == 1 else self._latest_poll()
            path = paths[shard_of(store_ids[0], len(paths))]
            with self.readers.connection(path, wait_seconds=READ_WAIT_SECONDS) as con:
                yield con, latest
        elif len(paths) == 1:
            with self.readers.connection(
                paths[0], wait_seconds=READ_WAIT_SECONDS, wide=True
            ) as con:
                yield con, None
        else:
            with self.readers.lent(paths, wait_seconds=READ_WAIT_SECONDS), sla_database(
                paths, limits=self.state.duckdb_limits, wait_seconds=READ_WAIT_SECONDS
            ) as con:
                yield con, None

    def _latest_poll(self) -> datetime | None:
        """The newest poll of all shards (what ``latest_poll`` reads over their union)."""
        found = []
        for path in self.state.shard_paths:
            with self.readers.connection(path, wait_seconds=READ_WAIT_SECONDS) as con:
                found.append(latest_poll(con))
        return max((latest for latest in found if latest is not None), default=None)


def _csv_bytes(con: duckdb.DuckDBPyConnection) -> bytes:
    with tempfile.TemporaryDirectory(prefix="storemon-sla-") as folder:
        return export_sla_csv(con, Path(folder) / "sla.csv").read_bytes()


def _rows(csv_bytes: bytes, worst: dict[str, SlaIncident | None]) -> list[SlaRow]:
    """The CSV's rows as numbers: the JSON says exactly what the CSV says."""
    def number(text: str) -> float | None:
        return float(text) if text else None

    return [
        SlaRow(
            store_id=row["store_id"],
            period_start=datetime.fromisoformat(row["period_start"]),
            period_end=datetime.fromisoformat(row["period_end"]),
            business_hours=float(row["business_hours"]),
            uptime_hours=float(row["uptime_hours"]),
            downtime_hours=float(row["downtime_hours"]),
            availability_pct=number(row["availability_pct"]),
            incidents=int(row["incidents"]),
            longest_incident_minutes=float(row["longest_incident_minutes"]),
            mean_time_to_recover_minutes=number(row["mean_time_to_recover_minutes"]),
            target_met=None if not row["target_met"] else row["target_met"] == "true",
            worst_incident=worst.get(row["store_id"]),
        )
        for row in csv.DictReader(io.StringIO(csv_bytes.decode()))
    ]


def _incidents(frame: pd.DataFrame) -> list[SlaIncident]:
    return [
        SlaIncident(
            start=as_aware_utc(row.incident_start.to_pydatetime()),
            end=as_aware_utc(row.incident_end.to_pydatetime()),
            business_minutes=float(row.business_minutes),
        )
        for row in frame.itertuples(index=False)
    ]


def _worst(incidents: list[SlaIncident]) -> SlaIncident | None:
    """The longest incident, the earliest of equals (they come in order of start)."""
    return max(incidents, key=lambda i: i.business_minutes, default=None)


def _worst_incidents(frame: pd.DataFrame) -> dict[str, SlaIncident | None]:
    """Each store's longest incident, the earliest of equals."""
    worst = frame.sort_values(
        ["store_id", "business_minutes", "incident_start"], ascending=[True, False, True],
        kind="stable",
    ).drop_duplicates("store_id")
    return dict(zip(worst["store_id"].astype(str), _incidents(worst), strict=True))


def _bins(rows: list[SlaRow]) -> list[AvailabilityBin]:
    """Stores with business time by availability (as the CSV rounds it), 5 % bins; 100 % is
    in the last."""
    counts = [0] * (100 // BIN_WIDTH)
    for row in rows:
        if row.availability_pct is not None:
            counts[min(int(row.availability_pct // BIN_WIDTH), len(counts) - 1)] += 1
    return [
        AvailabilityBin(lower=i * BIN_WIDTH, upper=(i + 1) * BIN_WIDTH, stores=n)
        for i, n in enumerate(counts)
    ]


def _months_between(first: datetime, last: datetime) -> Iterator[str]:
    month = date(first.year, first.month, 1)
    while month <= last.date():
        yield f"{month:%Y-%m}"
        month = date(month.year + month.month // 12, month.month % 12 + 1, 1)
