"""The storemon state folder as a Dagster resource."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import dagster as dg
import duckdb

from storemon_pipeline.engine.db import connect, is_lock_error, resource_errors
from storemon_pipeline.engine.shards import ensure_layout, union_connection
from storemon_pipeline.engine.sla import sla_database
from storemon_pipeline.settings import SAMPLE_DATA_DIR, Settings

# How often a step that found the DuckDB file locked past the wait is retried.
LOCK_RETRIES = 3


class StoremonState(dg.ConfigurableResource):
    """The state folder ($STOREMON_HOME): the DuckDB file, the report files, the incoming folder.

    Every asset opens DuckDB through ``connect``, which waits while another process holds the
    file (DuckDB allows one writing process per file) instead of failing.
    """

    home: str
    lock_wait_seconds: float = 120.0
    freshness_limit_hours: float = 2.0
    rejected_share_limit: float = 0.01
    retention_days: int | None = None
    shards: int = 1
    sla_target_pct: float = 99.0

    @classmethod
    def from_settings(cls, settings: Settings) -> StoremonState:
        return cls(
            home=str(settings.state_dir),
            lock_wait_seconds=settings.lock_wait_seconds,
            freshness_limit_hours=settings.freshness_limit_hours,
            rejected_share_limit=settings.rejected_share_limit,
            retention_days=settings.retention_days,
            shards=settings.shards,
            sla_target_pct=settings.sla_target_pct,
        )

    @property
    def settings(self) -> Settings:
        return Settings(
            home=Path(self.home),
            lock_wait_seconds=self.lock_wait_seconds,
            retention_days=self.retention_days,
            shards=self.shards,
            sla_target_pct=self.sla_target_pct,
        )

    @property
    def state_dir(self) -> Path:
        return self.settings.state_dir

    @property
    def duckdb_path(self) -> Path:
        return self.settings.duckdb_path

    @property
    def history_path(self) -> Path:
        return self.settings.history_path

    @property
    def reports_dir(self) -> Path:
        return self.settings.reports_dir

    @property
    def incoming_dir(self) -> Path:
        return self.settings.incoming_dir

    @property
    def sla_dir(self) -> Path:
        return self.settings.sla_dir

    def default_ingest_paths(self) -> list[Path]:
        """The sample data, then the incoming folder (so newer snapshots there win)."""
        self.incoming_dir.mkdir(parents=True, exist_ok=True)
        return [p for p in (SAMPLE_DATA_DIR, self.incoming_dir) if p.exists()]

    @contextmanager
    def connect(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """The DuckDB file, waiting while another process holds it; past the wait the step is
        retried later (only a lock is retried: other errors fail the run at once). With shards,
        every shard's file read-only, seen as one (the shards' own steps write them)."""
        self.state_dir.mkdir(parents=True, exist_ok=True)
        limits = self.settings.duckdb_limits
        ensure_layout(self.state_dir, self.shards)
        try:
            if self.shards > 1:
                con = union_connection(self.settings.shard_paths, limits)
            else:
                con = connect(self.duckdb_path, wait_seconds=self.lock_wait_seconds, limits=limits)
        except duckdb.IOException as exc:
            if not is_lock_error(exc):
                raise
            raise dg.RetryRequested(max_retries=LOCK_RETRIES, seconds_to_wait=10) from exc
        try:
            with resource_errors(limits):
                yield con
        finally:
            con.close()

    @contextmanager
    def sla_connection(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """The stores' database(s) read-only, to compute SLA periods on (``sla_database``): a
        writer holding the file past the wait makes the step retried later, as ``connect``."""
        self.state_dir.mkdir(parents=True, exist_ok=True)
        ensure_layout(self.state_dir, self.shards)
        limits = self.settings.duckdb_limits
        if self.shards == 1 and not self.duckdb_path.exists():
            with self.connect():  # a new state: the empty schema, so that there is a file
                pass
        with ExitStack() as stack:
            try:
                con = stack.enter_context(sla_database(
                    self.settings.shard_paths, limits=limits, wait_seconds=self.lock_wait_seconds
                ))
            except duckdb.IOException as exc:
                if not is_lock_error(exc):
                    raise
                raise dg.RetryRequested(max_retries=LOCK_RETRIES, seconds_to_wait=10) from exc
            with resource_errors(limits):
                yield con
