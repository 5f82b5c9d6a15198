"""What /health reports: can a report be triggered now, and if not, why?

Every check gives a reason in words for anyone (no paths, versions, addresses or stack traces)
and a detail for operators (shown with the token). What a trigger needs: the Dagster webserver
answering, the code location loaded and reachable with the report job in it, the daemon that
starts queued runs, a writable state folder, under `storemon up` every supervised process
running, and with the Celery executor its broker answering.

Warnings name what is wrong without stopping reports: the alerts' events given up (dead), or
left undelivered long after they were due (nothing is delivering them). They are read from
``alerts/delivery.json``, which the delivery rounds and the evaluations write: /health never
opens DuckDB.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from datetime import timedelta

from storemon_api.dagster_client import DagsterClient
from storemon_api.models import ComponentHealth, Health, HealthDetails
from storemon_pipeline.engine.delivery import DeliveryStatus, read_delivery_status
from storemon_pipeline.engine.files import read_json
from storemon_pipeline.engine.instants import as_aware_utc, iso, parse_iso, utc_now
from storemon_pipeline.engine.state import read_latest_poll
from storemon_pipeline.settings import Settings

# How many missed heartbeats of the supervisor make it "not watching" any more.
MISSED_HEARTBEATS = 4
# Pending alert events due longer ago than this: no delivery round is running (the back-off
# waits at most 30 minutes between attempts).
DELIVERY_OVERDUE = timedelta(hours=1)


@dataclass
class Check:
    ok: bool
    detail: str  # for operators
    reasons: list[str]  # for anyone: words only


def check_health(dagster: DagsterClient, state: Settings, *, with_details: bool) -> Health:
    dagster_check = _dagster(dagster)
    folder = _writable(state)
    services = _services(state)
    broker = _broker(state)
    reasons = dagster_check.reasons + folder.reasons + services.reasons
    if broker is not None:
        reasons += broker.reasons
    try:
        latest = read_latest_poll(state.state_dir)
    except (ValueError, OSError):
        latest = None
    alerts = _alert_delivery(state)
    details = HealthDetails(
        dagster=ComponentHealth(ok=dagster_check.ok, detail=dagster_check.detail),
        state_folder=ComponentHealth(ok=folder.ok, detail=folder.detail),
        services=ComponentHealth(ok=services.ok, detail=services.detail),
        broker=None if broker is None else ComponentHealth(ok=broker.ok, detail=broker.detail),
        latest_poll=as_aware_utc(latest),
        alerts=None if alerts is None else ComponentHealth(ok=alerts.ok, detail=alerts.detail),
    )
    return Health(
        status="unavailable" if reasons else "ok",
        reasons=reasons,
        warnings=[] if alerts is None else alerts.reasons,
        details=details if with_details else None,
    )


def _alert_delivery(state: Settings) -> Check | None:
    """The alerts' events as the last delivery round or evaluation left them (None: none has
    written its status yet). Not ok when some were given up; the reasons are warnings."""
    try:
        status = read_delivery_status(state.state_dir)
    except (ValueError, TypeError, OSError):
        return Check(False, "alerts/delivery.json cannot be read",
                     ["the alerts' delivery status cannot be read"])
    if status is None:
        return None
    warnings = []
    if status.dead:
        warnings.append(
            f"{_events(status.dead)} could not be delivered to a webhook and "
            f"{'was' if status.dead == 1 else 'were'} given up (dead)"
        )
    overdue = status.next_attempt_at is not None and (
        utc_now() - status.next_attempt_at > DELIVERY_OVERDUE
    )
    if status.pending and overdue:
        warnings.append(
            f"{_events(status.pending)} waiting for delivery to the webhooks "
            f"{'has' if status.pending == 1 else 'have'} been due for more than an hour: "
            "nothing is delivering them (is the alert delivery sensor off?)"
        )
    return Check(not status.dead, _delivery_detail(status), warnings)


def _events(count: int) -> str:
    return f"{count} alert event" + ("" if count == 1 else "s")


def _delivery_detail(status: DeliveryStatus) -> str:
    """For operators: the last error may name a webhook's URL."""
    detail = (
        f"alert events: {status.pending} pending, {status.delivered} delivered, "
        f"{status.dead} dead, {status.webhooks} webhook(s); checked {iso(status.checked_at)}"
    )
    if status.next_attempt_at is not None:
        detail += f"; next attempt due {iso(status.next_attempt_at)}"
    if status.last_error:
        detail += f"; last error: {status.last_error}"
    return detail


def _dagster(dagster: DagsterClient) -> Check:
    try:
        found = dagster.health()
    except Exception as exc:  # unreachable, or answering nonsense: either way not healthy
        return Check(False, str(exc), ["the Dagster webserver is unreachable"])
    reasons, details = [], []
    if found.location_errors:
        reasons.append("the code location cannot be loaded or reached: reports cannot start")
        details += [f"{name}: {message}" for name, message in found.location_errors.items()]
    elif not found.report_job_loaded:
        reasons.append("the report job is not loaded yet (the code location may be loading)")
        details.append(f"no job {dagster.report_job!r} in the code locations")
    if found.daemons_down:
        reasons.append("the Dagster daemon is not running: queued reports will not start")
        details.append("unhealthy daemons: " + ", ".join(found.daemons_down))
    return Check(
        not reasons,
        "; ".join(details) or f"Dagster {found.version} at {dagster.url}",
        reasons,
    )


def _writable(state: Settings) -> Check:
    folder = state.state_dir
    try:
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".health."):
            pass
    except OSError as exc:
        return Check(
            False,
            f"state folder {folder} is not writable: {exc}",
            ["the state folder is not writable"],
        )
    return Check(True, f"{folder} is writable", [])


def _broker(state: Settings) -> Check | None:
    """The Celery executor's Redis answering (None with the in-process executor)."""
    if state.executor != "celery":
        return None
    import redis

    try:
        client = redis.Redis.from_url(
            state.redis_url or "", socket_timeout=1, socket_connect_timeout=1
        )
        with client:
            client.ping()
    except (redis.RedisError, ValueError) as exc:
        return Check(
            False,
            f"the broker {state.redis_url} does not answer: {exc}",
            ["the Celery broker (Redis) is unreachable: reports cannot run"],
        )
    return Check(True, f"Redis at {state.redis_url} answers", [])


def _services(state: Settings) -> Check:
    """The processes `storemon up` supervises, from its state file (none: not under it)."""
    found = read_json(state.services_path)
    if found is None:
        return Check(True, "not run by `storemon up`: no supervised processes", [])
    updated = parse_iso(found.get("updated"))
    beat = timedelta(seconds=float(found.get("heartbeat_seconds", 5)) * MISSED_HEARTBEATS)
    services = found.get("services", {})
    if all(s.get("state") == "stopped" for s in services.values()):
        return Check(True, "storemon up has stopped its processes", [])
    if updated is None or utc_now() - updated > beat:
        return Check(
            False,
            f"no heartbeat from storemon up since {updated}",
            ["storemon up is no longer watching its processes"],
        )
    reasons, details = [], []
    for name, service in sorted(services.items()):
        details.append(
            f"{name}: {service.get('state')} (pid {service.get('pid')}, "
            f"{service.get('restarts', 0)} restarts, last exit {service.get('last_exit')})"
        )
        if service.get("state") == "running":
            continue
        crashes = int(service.get("quick_crashes") or 0)
        reasons.append(
            f"the {name} keeps crashing ({crashes} quick crashes): it is restarted, waiting "
            "longer each time"
            if crashes > 2
            else f"the {name} stopped and is being restarted"
        )
    return Check(not reasons, "; ".join(details), reasons)
