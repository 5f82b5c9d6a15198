"""Posting the alerts' events (the outbox ``alert_outbox``) to the webhooks (docs/semantics.md
§2.18): at least once, each event always under its one idempotency key, with exponential
back-off, and never holding the database while a receiver is slow.

A delivery round reads the due events and closes the database, posts them, then opens the
database again to record the attempts in one transaction. A crash between the post and the
record posts the same event again, under the same key, in a later round: a receiver
deduplicates on ``Idempotency-Key``. The rounds run in the Dagster daemon's sensor loop
(defs/sensors.py); the state they leave is also written to ``alerts/delivery.json``, so that
the REST facade's /health and the sensor's next tick read it without opening DuckDB.
"""

from __future__ import annotations

import collections
import hashlib
import hmac
import time
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import duckdb
import httpx
import pandas as pd
import tenacity

from storemon_pipeline.engine.db import sql
from storemon_pipeline.engine.files import read_json, write_json_atomically
from storemon_pipeline.engine.instants import iso, parse_iso, utc_now

DELIVERY_STATUS_FILE = Path("alerts") / "delivery.json"
# The wait before attempt n+1 of an event: 15 s, 30 s, 1 min, ... at most 30 min, plus up to
# 5 s of jitter so that events failed together are not retried in lockstep.
BACKOFF = tenacity.wait_exponential_jitter(multiplier=15, max=1800, jitter=5)
# One round posts for at most this long (the sensor's evaluation has a deadline); what is left
# is due at the next round.
ROUND_SECONDS = 20.0
POST_TIMEOUT = httpx.Timeout(5.0, connect=2.0)
EVENTS_PER_ROUND = 500
# A webhook answering this many error statuses in a round is left alone until the next round.
STATUS_FAILURES_PER_ROUND = 3
USER_AGENT = "storemon-alerts"

ConnectionFactory = Callable[[], AbstractContextManager[duckdb.DuckDBPyConnection]]


@dataclass(frozen=True)
class OutboxEvent:
    event_key: str
    payload: str
    attempts: int
    delivered_to: tuple[str, ...]
    created_at: datetime


@dataclass(frozen=True)
class Post:
    """One post of an event to one webhook, and its answer."""

    webhook: str
    posted_at: datetime
    status: int | None  # None: no answer (refused, a timeout)
    error: str | None  # None: acknowledged
    seconds: float


@dataclass
class Attempt:
    """One round's posts of one event."""

    event_key: str
    posts: list[Post] = field(default_factory=list)

    @property
    def acknowledged(self) -> list[str]:
        return [post.webhook for post in self.posts if post.error is None]

    @property
    def error(self) -> str | None:
        """The last failed post's webhook and error."""
        failed = [post for post in self.posts if post.error is not None]
        return f"{failed[-1].webhook}: {failed[-1].error}" if failed else None


@dataclass(frozen=True)
class DeliveryStatus:
    """The outbox after the last round or evaluation (``alerts/delivery.json``)."""

    checked_at: datetime | None
    pending: int = 0
    delivered: int = 0
    dead: int = 0
    webhooks: int = 0
    next_attempt_at: datetime | None = None  # the earliest pending event's; None: none pending
    last_error: str | None = None  # for operators: it may name a webhook's URL

    def due(self, now: datetime) -> bool:
        return self.next_attempt_at is not None and self.next_attempt_at <= now


def signature(body: bytes, secret: str) -> str:
    """``X-Storemon-Signature``: the hex HMAC-SHA256 of the body under the secret."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def due_events(
    con: duckdb.DuckDBPyConnection, now: datetime, limit: int = EVENTS_PER_ROUND
) -> list[OutboxEvent]:
    """The events to post now, oldest first; an alert's ``resolved`` waits until its ``opened``
    was delivered (or given up), so that no receiver hears of a recovery first."""
    rows = con.execute(
        """
        SELECT event_key, payload, attempts, delivered_to, created_at
        FROM alert_outbox AS event
        WHERE delivered_at IS NULL AND dead_at IS NULL AND next_attempt_at <= $now
          AND NOT (event = 'resolved' AND EXISTS (
              SELECT 1 FROM alert_outbox AS opened
              WHERE opened.alert_id = event.alert_id AND opened.event = 'opened'
                AND opened.delivered_at IS NULL AND opened.dead_at IS NULL))
        ORDER BY created_at, created_as_of, event_key
        LIMIT $limit
        """,
        {"now": now, "limit": limit},
    ).fetchall()
    return [OutboxEvent(key, payload, attempts, tuple(to), created) for
            key, payload, attempts, to, created in rows]


def post_events(
    events: list[OutboxEvent],
    urls: list[str],
    secret: str | None,
    *,
    client: httpx.Client | None = None,
    round_seconds: float = ROUND_SECONDS,
) -> list[Attempt]:
    """Post each event to each webhook that has not acknowledged it. A webhook that cannot be
    reached in time (refused, a timeout) is not posted to again until the next round, nor one
    that answered ``STATUS_FAILURES_PER_ROUND`` error statuses; posting stops after
    ``round_seconds``. Only a 2xx answer acknowledges."""
    started = time.monotonic()
    failing: set[str] = set()
    status_failures: collections.Counter[str] = collections.Counter()
    attempts: list[Attempt] = []
    with _client(client) as http:
        for event in events:
            targets = [u for u in urls if u not in event.delivered_to and u not in failing]
            if not targets or time.monotonic() - started > round_seconds:
                continue
            attempt = Attempt(event.event_key)
            body = event.payload.encode()
            headers = {
                "Content-Type": "application/json",
                "Idempotency-Key": event.event_key,
                "User-Agent": USER_AGENT,
            }
            if secret:
                headers["X-Storemon-Signature"] = signature(body, secret)
            for url in targets:
                posted_at, began = utc_now(), time.monotonic()
                try:
                    answer = http.post(url, content=body, headers=headers)
                except httpx.HTTPError as exc:
                    status, error = None, f"{type(exc).__name__}: {exc}"
                    failing.add(url)
                else:
                    status = answer.status_code
                    error = None if answer.is_success else f"HTTP {status}"
                    if error is not None:
                        status_failures[url] += 1
                        if status_failures[url] >= STATUS_FAILURES_PER_ROUND:
                            failing.add(url)
                attempt.posts.append(
                    Post(url, posted_at, status, error, time.monotonic() - began)
                )
            attempts.append(attempt)
    return attempts


def _client(client: httpx.Client | None) -> AbstractContextManager[httpx.Client]:
    if client is not None:
        return nullcontext(client)
    return httpx.Client(timeout=POST_TIMEOUT, follow_redirects=False)


def record_attempts(
    con: duckdb.DuckDBPyConnection,
    attempts: list[Attempt],
    urls: list[str],
    *,
    now: datetime,
    retry_max_hours: float,
) -> int:
    """One transaction: each post recorded (``alert_delivery_attempts``), each event's
    acknowledgements added, delivered once every webhook has
    acknowledged it; otherwise its next attempt after the back-off, or given up (dead) once it
    is older than ``retry_max_hours``. Returns how many of the events are now delivered."""
    if not attempts:
        return 0
    # the wait is drawn here, with its jitter, for the attempt each event is at
    stored = dict(con.execute(
        "SELECT event_key, attempts FROM alert_outbox WHERE list_contains($keys, event_key)",
        {"keys": [a.event_key for a in attempts]},
    ).fetchall())
    rows = pd.DataFrame(
        {
            "event_key": [a.event_key for a in attempts],
            "acknowledged": [a.acknowledged for a in attempts],
            "error": [a.error for a in attempts],
            "wait_us": [
                round(backoff_seconds(stored.get(a.event_key, 0) + 1) * 1e6) for a in attempts
            ],
        }
    )
    posts = pd.DataFrame(
        [(a.event_key, p.webhook, p.posted_at, p.status, p.error, p.seconds)
         for a in attempts for p in a.posts],
        columns=["event_key", "webhook", "posted_at", "status", "error", "seconds"],
    ).astype({"status": "Int64"})
    con.begin()
    try:
        con.register("round_attempts", rows)
        con.register("round_posts", posts)
        con.execute(
            "INSERT INTO alert_delivery_attempts SELECT event_key, webhook, posted_at, "
            "status::INTEGER, error, seconds FROM round_posts"
        )
        con.execute(
            sql("alert_delivery_record"),
            {"now": now, "urls": urls, "max_us": round(retry_max_hours * 3600e6)},
        )
        delivered = con.execute(
            "SELECT count(*) FROM alert_outbox WHERE delivered_at = $now::TIMESTAMP "
            "AND event_key IN (SELECT event_key FROM round_attempts)",
            {"now": now},
        ).fetchone()[0]
        con.commit()
    except BaseException:
        con.rollback()
        raise
    finally:
        con.unregister("round_attempts")
        con.unregister("round_posts")
    return delivered


def backoff_seconds(attempt: int) -> float:
    """The wait after the ``attempt``-th failed attempt (tenacity's exponential jitter)."""
    state = tenacity.RetryCallState(retry_object=None, fn=None, args=(), kwargs={})
    state.attempt_number = attempt
    return BACKOFF(state)


def delivery_status(
    con: duckdb.DuckDBPyConnection, webhooks: int, now: datetime | None = None
) -> DeliveryStatus:
    pending, delivered, dead, next_at, last_error = con.execute(
        """
        SELECT
            count(*) FILTER (WHERE delivered_at IS NULL AND dead_at IS NULL),
            count(*) FILTER (WHERE delivered_at IS NOT NULL),
            count(*) FILTER (WHERE dead_at IS NOT NULL),
            min(next_attempt_at) FILTER (WHERE delivered_at IS NULL AND dead_at IS NULL),
            arg_max(last_error, next_attempt_at) FILTER (WHERE last_error IS NOT NULL
                                                         AND delivered_at IS NULL)
        FROM alert_outbox
        """
    ).fetchone()
    return DeliveryStatus(now or utc_now(), pending, delivered, dead, webhooks, next_at, last_error)


def write_delivery_status(state_dir: Path, status: DeliveryStatus) -> Path:
    """Written while the database is held, so that a newer status is never overwritten by an
    older one."""
    return write_json_atomically(
        state_dir / DELIVERY_STATUS_FILE,
        {
            "checked_at": iso(status.checked_at),
            "pending": status.pending,
            "delivered": status.delivered,
            "dead": status.dead,
            "webhooks": status.webhooks,
            "next_attempt_at": iso(status.next_attempt_at),
            "last_error": status.last_error,
        },
    )


def save_delivery_status(
    con: duckdb.DuckDBPyConnection, state_dir: Path, webhooks: int
) -> DeliveryStatus:
    """The outbox's status now, written to ``alerts/delivery.json`` while ``con`` holds the
    database (after an evaluation or a round)."""
    status = delivery_status(con, webhooks)
    write_delivery_status(state_dir, status)
    return status


def read_delivery_status(state_dir: Path) -> DeliveryStatus | None:
    """The outbox as the last round or evaluation left it; None before any."""
    payload = read_json(state_dir / DELIVERY_STATUS_FILE)
    if payload is None:
        return None
    return DeliveryStatus(
        checked_at=parse_iso(payload.get("checked_at")),
        pending=int(payload.get("pending") or 0),
        delivered=int(payload.get("delivered") or 0),
        dead=int(payload.get("dead") or 0),
        webhooks=int(payload.get("webhooks") or 0),
        next_attempt_at=parse_iso(payload.get("next_attempt_at")),
        last_error=payload.get("last_error"),
    )


@dataclass(frozen=True)
class DeliveryRound:
    posted: int  # events posted to at least one webhook
    delivered: int  # events every webhook has now acknowledged
    failed: int  # events with an error this round
    status: DeliveryStatus


def deliver_due_events(
    connect: ConnectionFactory,
    state_dir: Path,
    urls: list[str],
    *,
    secret: str | None,
    retry_max_hours: float,
    client: httpx.Client | None = None,
    round_seconds: float = ROUND_SECONDS,
) -> DeliveryRound:
    """One round: the due events read (the database then closed), posted, the attempts
    recorded and the status written (the database held again)."""
    now = utc_now()
    with connect() as con:
        events = due_events(con, now)
    attempts = post_events(events, urls, secret, client=client, round_seconds=round_seconds)
    with connect() as con:
        delivered = record_attempts(
            con, attempts, urls, now=utc_now(), retry_max_hours=retry_max_hours
        )
        status = save_delivery_status(con, state_dir, len(urls))
    return DeliveryRound(
        posted=sum(1 for a in attempts if a.acknowledged),
        delivered=delivered,
        failed=sum(1 for a in attempts if a.error),
        status=status,
    )


def read_events(
    con: duckdb.DuckDBPyConnection, alert_ids: list[str] | None = None
) -> pd.DataFrame:
    """The outbox rows (of these alerts, or all), oldest first: event_key, alert_id, event,
    created_at, attempts, delivered_at, dead_at, next_attempt_at, last_error (for operators:
    it may name a webhook's URL)."""
    return con.execute(
        """
        SELECT event_key, alert_id, event, created_at, attempts, delivered_at, dead_at,
               next_attempt_at, last_error
        FROM alert_outbox
        WHERE $alert_ids IS NULL OR list_contains($alert_ids, alert_id)
        ORDER BY created_at, event_key
        """,
        {"alert_ids": alert_ids},
    ).df()
