"""The FastAPI application: ``uvicorn storemon_api.main:app``, or ``serve(host, port)``."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import FileResponse, HTMLResponse
from fastapi.staticfiles import StaticFiles

from storemon_api.alerts import AlertService
from storemon_api.dagster_client import DagsterClient
from storemon_api.errors import install_handlers
from storemon_api.routers import alerts, fleet, health, report_requests, reports, sla, stores
from storemon_api.service import ReportService
from storemon_api.settings import ApiSettings, get_api_settings
from storemon_api.sla import SlaService
from storemon_api.stores import READ_WAIT_SECONDS, StoreService
from storemon_pipeline.engine.readers import Readers
from storemon_pipeline.settings import Settings, get_settings

STATIC_DIR = Path(__file__).resolve().parent / "static"
READER_THREADS = 1

DESCRIPTION = """
Uptime/downtime reports of stores, computed by the storemon Dagster pipeline.

1. `POST /trigger_report` starts a report as of the latest poll and answers its `report_id`.
2. `GET /get_report?report_id=...` answers `{"status": "Running"}` until the CSV is ready, then
   the CSV (header `X-Report-Status: Complete`), or `{"status": "Failed", "error": ...}`.

When `STOREMON_API_TOKEN` is set, send `Authorization: Bearer <token>` (everything but
`/health`, these docs and the web page needs it).
"""


def create_app(
    settings: ApiSettings | None = None,
    state: Settings | None = None,
    dagster: DagsterClient | None = None,
) -> FastAPI:
    """Build the app; arguments override the environment (tests, embedding)."""
    settings = settings or get_api_settings()
    state = state or get_settings()
    dagster = dagster or DagsterClient(
        settings.dagster_url,
        timeout=settings.dagster_timeout_seconds,
        report_job=settings.report_job,
    )

    # the stores' DuckDB files, held open between requests and let go for writers; a request's
    # queries on one thread each (many small requests at once), all for work over every store
    readers = Readers(
        wait_seconds=READ_WAIT_SECONDS, limits=state.duckdb_limits, threads=READER_THREADS
    )

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        try:
            yield
        finally:
            readers.close()
            dagster.close()

    app = FastAPI(
        title="storemon",
        version="0.1.0",
        description=DESCRIPTION,
        docs_url=None,  # served below from local files: no CDN
        redoc_url=None,
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.state = state
    app.state.dagster = dagster
    app.state.reports = ReportService(dagster, state)
    app.state.readers = readers
    app.state.stores = StoreService(state, settings.dagster_url, readers)
    app.state.sla = SlaService(state, settings.dagster_url, readers)
    app.state.alerts = AlertService(state, readers)
    install_handlers(app)
    for router in (
        report_requests.router, reports.router, stores.router, sla.router, alerts.router,
        fleet.router, health.router,
    ):
        app.include_router(router)
    _mount_page(app)
    _mount_docs(app)
    return app


def _mount_page(app: FastAPI) -> None:
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")

    @app.get("/", include_in_schema=False)
    def page() -> FileResponse:
        return FileResponse(STATIC_DIR / "index.html", media_type="text/html")


def _mount_docs(app: FastAPI) -> None:
    """Swagger UI from the swagger-ui-bundle package when installed; FastAPI's CDN otherwise."""
    try:
        from swagger_ui_bundle import swagger_ui_path
    except ImportError:
        swagger_ui_path = None
    assets = {}
    if swagger_ui_path is not None:
        app.mount("/docs-assets", StaticFiles(directory=swagger_ui_path), name="docs-assets")
        assets = {
            "swagger_js_url": "/docs-assets/swagger-ui-bundle.js",
            "swagger_css_url": "/docs-assets/swagger-ui.css",
            "swagger_favicon_url": "/docs-assets/favicon-32x32.png",
        }

    @app.get("/docs", include_in_schema=False)
    def docs() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=app.openapi_url or "/openapi.json", title="storemon API", **assets
        )


def serve(host: str | None = None, port: int | None = None, dagster_url: str | None = None) -> None:
    """Run the API under uvicorn (blocking). Defaults: STOREMON_API_HOST / STOREMON_API_PORT /
    STOREMON_DAGSTER_URL, else 127.0.0.1:8000 talking to Dagster at 127.0.0.1:3000."""
    import uvicorn

    settings = ApiSettings(dagster_url=dagster_url) if dagster_url else get_api_settings()
    uvicorn.run(
        create_app(settings),
        host=host or settings.api_host,
        port=port or settings.api_port,
        log_level="info",
    )


def __getattr__(name: str) -> FastAPI:
    """``storemon_api.main:app`` for uvicorn, built on first use (not at import: tests import
    this module with their own settings)."""
    if name == "app":
        globals()["app"] = application = create_app()
        return application
    raise AttributeError(name)
