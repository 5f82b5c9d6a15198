"""What /health reports: is everything a trigger needs there?"""

from __future__ import annotations

import tempfile

from storemon_api.dagster_client import DagsterClient
from storemon_api.models import ComponentHealth, Health
from storemon_pipeline.engine.instants import as_aware_utc
from storemon_pipeline.engine.state import read_latest_poll
from storemon_pipeline.settings import Settings


def check_health(dagster: DagsterClient, state: Settings) -> Health:
    reasons: list[str] = []
    try:
        found = dagster.health()
        reasons += found.problems
        dagster_health = ComponentHealth(
            ok=not found.problems,
            detail="; ".join(found.problems) or f"Dagster {found.version} at {dagster.url}",
        )
    except Exception as exc:  # unreachable, or answering nonsense: either way not healthy
        reasons.append(str(exc))
        dagster_health = ComponentHealth(ok=False, detail=str(exc))
    folder = _writable(state)
    if not folder.ok:
        reasons.append(folder.detail)
    try:
        latest = read_latest_poll(state.state_dir)
    except (ValueError, OSError):
        latest = None
    return Health(
        status="unavailable" if reasons else "ok",
        dagster=dagster_health,
        state_folder=folder,
        latest_poll=as_aware_utc(latest),
        reasons=reasons,
    )


def _writable(state: Settings) -> ComponentHealth:
    folder = state.state_dir
    try:
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".health."):
            pass
    except OSError as exc:
        return ComponentHealth(ok=False, detail=f"state folder {folder} is not writable: {exc}")
    return ComponentHealth(ok=True, detail=f"{folder} is writable")
