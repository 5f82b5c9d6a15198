"""Instants as the engine keeps them: naive datetimes in UTC, to the microsecond.

DuckDB stores polls as TIMESTAMP (no zone) in UTC; every instant that enters the engine is
converted here once, and every instant that leaves it as text is formatted here.
"""

from __future__ import annotations

from datetime import UTC, datetime


def as_naive_utc(instant: datetime) -> datetime:
    """An aware instant converted to UTC; a naive one is taken to be UTC already."""
    if instant.tzinfo is not None:
        instant = instant.astimezone(UTC).replace(tzinfo=None)
    return instant


def utc_now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def iso(instant: datetime | None) -> str | None:
    """ISO-8601 with an explicit offset (``+00:00`` for the engine's naive UTC instants)."""
    return None if instant is None else as_aware_utc(instant).isoformat()


def parse_iso(text: str | None) -> datetime | None:
    """ISO-8601 text back to the engine's naive UTC instant (no offset: UTC)."""
    return None if text is None else as_naive_utc(datetime.fromisoformat(text))


def parse_instant(text: str) -> datetime:
    """An instant as a user types it: ISO-8601, or the feeds' ``2023-01-22 12:09:39 UTC`` form;
    without an offset it is UTC. Raises ValueError."""
    return as_naive_utc(datetime.fromisoformat(text.strip().removesuffix(" UTC")))


def epoch_seconds(instant: datetime) -> float:
    """Unix seconds of a naive UTC (or aware) instant: what Dagster's timestamp metadata takes."""
    return as_aware_utc(instant).timestamp()


def as_aware_utc(instant: datetime | None) -> datetime | None:
    """The engine's naive UTC instant with its zone attached, for answers that carry one."""
    if instant is None:
        return None
    return instant if instant.tzinfo else instant.replace(tzinfo=UTC)


def from_epoch_seconds(seconds: float | None) -> datetime | None:
    """Unix seconds (as Dagster reports times) as an aware UTC instant."""
    return None if seconds is None else datetime.fromtimestamp(seconds, UTC)
