"""Where storemon keeps its state; one folder holds everything it writes."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from storemon_pipeline.engine.db import DEFAULT_TEMP_LIMIT_GB, ResourceLimits, default_memory_mb
from storemon_pipeline.engine.files import free_disk_bytes
from storemon_pipeline.engine.shards import shard_db_paths
from storemon_pipeline.engine.zones import DEFAULT_TIMEZONE

if TYPE_CHECKING:
    from storemon_pipeline.engine.ingest import IngestGuards
    from storemon_pipeline.engine.sharded import ShardedState

PROJECT_ROOT = Path(__file__).resolve().parent.parent
SAMPLE_DATA_DIR = PROJECT_ROOT / "data"
__all__ = ["DEFAULT_TIMEZONE", "PROJECT_ROOT", "SAMPLE_DATA_DIR", "Settings", "get_settings"]


class Settings(BaseSettings):
    """Read from the environment (``STOREMON_*``) so every process of a deployment agrees."""

    model_config = SettingsConfigDict(env_prefix="STOREMON_")

    home: Path = Field(default=PROJECT_ROOT / "var", description="State folder.")

    # The Dagster layer (storemon_pipeline/defs); read when the code location loads.
    sensor_interval_seconds: int = Field(
        default=30, ge=1, description="How often the sensors look for new work."
    )
    lock_wait_seconds: float = Field(
        default=120.0, ge=0, description="How long a run waits for the DuckDB file to be free."
    )
    freshness_limit_hours: float = Field(
        default=2.0, gt=0, description="Warn when a report's newest poll is older than this."
    )
    retention_days: int | None = Field(
        default=None,
        ge=1,
        description="Drop polls older than this many days before the latest poll (plus the "
        "8 days a report looks back) at each ingest. Default: keep everything.",
    )
    rejected_share_limit: float = Field(
        default=0.01, ge=0, le=1, description="Warn when more of an ingest's rows are rejected."
    )
    sla_target_pct: float = Field(
        default=99.0,
        ge=0,
        le=100,
        description="The availability a store's SLA period must reach (docs/semantics.md "
        "§2.17), in percent of its business time; `storemon sla --target` overrides it.",
    )

    # Alerts (docs/semantics.md §2.18; engine/alerts.py).
    alert_min_down_minutes: float = Field(
        default=30,
        ge=0,
        description="A store whose current run of inactive status covers at least this much of "
        "its business time (minutes, as of the latest poll) has an open alert.",
    )
    alert_webhook_urls: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Where the alerts' events are posted: URLs separated by commas (e.g. a "
        "Slack incoming webhook's); none: the events wait in the outbox.",
    )
    alert_secret: SecretStr | None = Field(
        default=None,
        description="The key the events posted to the webhooks are signed with (an HMAC-SHA256 "
        "of the body), so a receiver can tell them from forgeries.",
    )
    alert_retry_max_hours: float = Field(
        default=24,
        gt=0,
        description="How long an event is retried (with exponential back-off) before it is "
        "given up as dead.",
    )

    @field_validator("alert_webhook_urls", mode="before")
    @classmethod
    def _comma_separated(cls, value: object) -> object:
        if isinstance(value, str):
            return [url.strip() for url in value.split(",") if url.strip()]
        return value

    shards: int = Field(
        default=1,
        ge=1,
        le=256,
        description="How many DuckDB files the stores are split into (docs/semantics.md §2.14); "
        "changing it needs `storemon reshard N`.",
    )

    executor: Literal["in_process", "celery"] = Field(
        default="in_process",
        description="Where a run's steps execute: in the run's process, or on Celery workers "
        "(storemon up --executor celery).",
    )
    redis_url: str | None = Field(
        default=None,
        description="The Celery executor's broker and result backend; `storemon up --executor "
        "celery` starts a Redis server on 127.0.0.1 and sets it when unset.",
    )

    celery_visibility_timeout_seconds: int = Field(
        default=600,
        ge=10,
        description="A step whose Celery worker died whole (or its machine) is handed to "
        "another worker after this long; it must exceed the longest step.",
    )
    dagster_postgres_url: str | None = Field(
        default=None,
        description="Keep Dagster's runs, events and schedules in this PostgreSQL database "
        "instead of SQLite in the state folder: what several machines need.",
    )

    # Every DuckDB connection (engine/db.py).
    duckdb_memory_limit_mb: int = Field(
        default_factory=default_memory_mb,
        ge=16,
        description="Memory one DuckDB connection may use (default 2048, or 60 % of a machine "
        "with less than 3.4 GB); the work over every store is chunked to fit it.",
    )
    duckdb_temp_limit_gb: float | None = Field(
        default=None,
        gt=0,
        description="Disk one DuckDB connection may fill with spill files (<db>.tmp/); by "
        "default 20 GB, or half the free space of the state folder's disk if that is less.",
    )
    duckdb_threads: int | None = Field(
        default=None, ge=1, description="Threads per DuckDB connection (default: one per core)."
    )

    # Ingest guards (engine/ingest.py).
    max_file_mb: float = Field(
        default=4096, gt=0, description="Refuse to ingest a file larger than this."
    )
    min_free_disk_mb: float = Field(
        default=512,
        ge=0,
        description="Refuse to ingest while the state folder's disk has less free space.",
    )

    max_clock_skew_minutes: float = Field(
        default=60,
        ge=0,
        description="Quarantine a poll later than the ingest's clock plus this "
        "(future_timestamp): a device with a wrong clock never moves the latest poll.",
    )

    @property
    def ingest_guards(self) -> IngestGuards:
        from storemon_pipeline.engine.ingest import IngestGuards

        return IngestGuards(
            int(self.max_file_mb * 2**20), int(self.min_free_disk_mb * 2**20), self.state_dir,
            max_clock_skew=timedelta(minutes=self.max_clock_skew_minutes),
        )

    @property
    def duckdb_limits(self) -> ResourceLimits:
        temp_gb = self.duckdb_temp_limit_gb
        if temp_gb is None:
            temp_gb = min(DEFAULT_TEMP_LIMIT_GB, max(free_disk_bytes(self.state_dir) / 2**31, 0.1))
        return ResourceLimits(self.duckdb_memory_limit_mb, temp_gb, self.duckdb_threads)

    @property
    def sharded(self) -> ShardedState:
        """What the engine's sharded steps need of these settings."""
        from storemon_pipeline.engine.sharded import ShardedState

        return ShardedState(
            state_dir=self.state_dir,
            shards=self.shards,
            history_path=self.history_path,
            staging_dir=self.staging_dir,
            shard_results_dir=self.shard_results_dir,
            limits=self.duckdb_limits,
            lock_wait_seconds=self.lock_wait_seconds,
            guards=self.ingest_guards,
            retention_days=self.retention_days,
        )

    @property
    def state_dir(self) -> Path:
        return self.home.resolve()

    @property
    def duckdb_path(self) -> Path:
        return self.state_dir / "storemon.duckdb"

    @property
    def shard_paths(self) -> list[Path]:
        """The feeds' DuckDB files: ``storemon.duckdb`` alone with one shard."""
        return shard_db_paths(self.state_dir, self.shards)

    @property
    def staging_dir(self) -> Path:
        """Where a sharded ingest leaves each file's rows split by shard, until loaded."""
        return self.state_dir / "staging"

    @property
    def shard_results_dir(self) -> Path:
        """Where the shards of a report run leave their rows for the step that assembles them."""
        return self.state_dir / "shard_results"

    @property
    def history_path(self) -> Path:
        """The report history (engine/history.py), beside the main database."""
        return self.state_dir / "history.duckdb"

    @property
    def services_path(self) -> Path:
        """What `storemon up` knows of its processes, for /health (supervisor.py)."""
        return self.state_dir / "services.json"

    @property
    def sla_dir(self) -> Path:
        """The months the ``monthly_sla`` asset saved (engine/sla.py ``save_sla``)."""
        return self.state_dir / "sla"

    @property
    def reports_dir(self) -> Path:
        return self.state_dir / "reports"

    @property
    def incoming_dir(self) -> Path:
        return self.state_dir / "incoming"

    @property
    def dagster_home(self) -> Path:
        return self.state_dir / "dagster"

    def ensure_dirs(self) -> None:
        for folder in (self.state_dir, self.reports_dir, self.incoming_dir, self.dagster_home):
            folder.mkdir(parents=True, exist_ok=True)


def get_settings() -> Settings:
    return Settings()
