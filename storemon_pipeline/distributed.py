"""Running the shard steps on Dagster's Celery executor, with Redis as broker and result backend.

`storemon up --executor celery` starts a Redis server on 127.0.0.1 (unless STOREMON_REDIS_URL
names one) and K Celery workers; every process of the deployment reads the same settings, so
the code location's executor and the workers agree on the broker.
"""

from __future__ import annotations

from typing import Any

from storemon_pipeline.settings import Settings

# A step whose worker dies is delivered again to another worker (acknowledged only when done,
# requeued when its worker is lost), and a worker takes one step at a time.
CELERY_OPTIONS: dict[str, Any] = {
    "task_acks_late": True,
    "task_reject_on_worker_lost": True,
    "worker_prefetch_multiplier": 1,
}


class NoBrokerError(RuntimeError):
    """The Celery executor is chosen but no broker is set."""


def celery_config(settings: Settings) -> dict[str, Any]:
    """The Celery executor's configuration (the workers are started with the same)."""
    if not settings.redis_url:
        raise NoBrokerError(
            "STOREMON_EXECUTOR=celery needs STOREMON_REDIS_URL (`storemon up --executor celery` "
            "sets it when it starts its own Redis)"
        )
    return {
        "broker": settings.redis_url,
        "backend": settings.redis_url,
        "config_source": CELERY_OPTIONS,
    }
