"""The API's settings: where Dagster is, the optional token, where to listen.

Read from ``STOREMON_*`` environment variables like the pipeline's, so one environment configures
every process of a deployment. The state folder itself comes from ``storemon_pipeline.settings``
(``STOREMON_HOME``): the API must read the very files the Dagster runs write.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class ApiSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="STOREMON_", extra="ignore")

    dagster_url: str = Field(
        default="http://127.0.0.1:3000",
        description="Base URL of the Dagster webserver (its GraphQL endpoint is <url>/graphql).",
    )
    dagster_timeout_seconds: float = Field(
        default=15.0, gt=0, description="Per-request timeout when talking to Dagster."
    )
    report_job: str = Field(
        default="uptime_report_job",
        description="The Dagster job that materializes the `uptime_report` asset.",
    )
    api_token: SecretStr | None = Field(
        default=None,
        description="When set, every endpoint but /health, the docs and the page's static files "
        "requires `Authorization: Bearer <token>`.",
    )
    api_host: str = Field(default="127.0.0.1", description="Interface `serve()` listens on.")
    api_port: int = Field(default=8000, ge=1, le=65535, description="Port `serve()` listens on.")
    reports_list_limit: int = Field(
        default=50, ge=1, le=1000, description="Most reports `GET /reports` returns."
    )

    @field_validator("dagster_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("must be an http(s) URL such as http://127.0.0.1:3000")
        return value.rstrip("/")

    @field_validator("api_token")
    @classmethod
    def _empty_is_unset(cls, value: SecretStr | None) -> SecretStr | None:
        return value if value is not None and value.get_secret_value() else None

    @property
    def token(self) -> str | None:
        return None if self.api_token is None else self.api_token.get_secret_value()


def get_api_settings() -> ApiSettings:
    return ApiSettings()
