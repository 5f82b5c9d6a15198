"""Running the shard steps on Dagster's Celery executor, with Redis as broker and result backend.

`storemon up --executor celery` starts a Redis server on 127.0.0.1 (unless STOREMON_REDIS_URL
names one) and K Celery workers; every process of the deployment reads the same settings, so
the code location's executor and the workers agree on the broker.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from storemon_pipeline.settings import Settings

# The Celery queue dagster-celery routes steps to.
QUEUE = "dagster"
# A step is acknowledged only when done: when the process running it dies, it is requeued at
# once and runs again; when its whole worker (or machine) dies, Redis hands it to another worker
# once the visibility timeout (STOREMON_CELERY_VISIBILITY_TIMEOUT_SECONDS) has passed. That must
# exceed the longest step, or a step still running would be handed out again. A worker takes one
# step at a time.
CELERY_OPTIONS: dict[str, Any] = {
    "task_acks_late": True,
    "task_reject_on_worker_lost": True,
    "worker_prefetch_multiplier": 1,
}
# replace dagster-celery's defaults as a whole: its keys are repeated
BROKER_TRANSPORT_OPTIONS: dict[str, Any] = {
    "unacked_restore_interval": 5,
    "unacked_restore_throttle": 1,
    "max_retries": 3,
    "interval_start": 0,
    "interval_step": 0.2,
    "interval_max": 0.5,
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
        "config_source": {
            **CELERY_OPTIONS,
            "broker_transport_options": {
                **BROKER_TRANSPORT_OPTIONS,
                "visibility_timeout": settings.celery_visibility_timeout_seconds,
            },
        },
    }


def worker_config_dir(settings: Settings) -> Path:
    """A folder holding the workers' Celery configuration (the module dagster-celery's worker
    reads, written by dagster-celery itself from the executor's configuration); put it on the
    workers' PYTHONPATH."""
    import yaml
    from dagster_celery.cli import get_config_dir

    executor_yaml = settings.dagster_home / "celery_executor.yaml"
    executor_yaml.write_text(yaml.safe_dump({"execution": {"config": celery_config(settings)}}))
    return Path(get_config_dir(str(executor_yaml)))
