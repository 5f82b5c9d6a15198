"""Where storemon keeps its state; one folder holds everything it writes."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

PROJECT_ROOT = Path(__file__).resolve().parent.parent
SAMPLE_DATA_DIR = PROJECT_ROOT / "data"
DEFAULT_TIMEZONE = "America/Chicago"


class Settings(BaseSettings):
    """Read from the environment (``STOREMON_*``) so every process of a deployment agrees."""

    model_config = SettingsConfigDict(env_prefix="STOREMON_")

    home: Path = Field(default=PROJECT_ROOT / "var", description="State folder.")

    @property
    def state_dir(self) -> Path:
        return self.home.resolve()

    @property
    def duckdb_path(self) -> Path:
        return self.state_dir / "storemon.duckdb"

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
