"""Alerts through the whole product: `storemon up` (Dagster webserver, daemon, code server, API)
with a webhook set to a real receiver on loopback. Poll files dropped into `incoming/` are
ingested by the sensor's runs, whose `store_alerts` step decides the alerts; the
`alert_deliveries` sensor posts their events. The receiver answers 503 while `storemon up` is
killed with SIGKILL (events pending), then 200 after a new `storemon up`: every event arrives,
each under its one key; a receiver that stalls past the timeout holds up no ingest."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import psutil
import pytest
from support.alert_scenario import delivered
from support.oracle import write_feeds
from support.up import Up, running_up

from storemon_pipeline.settings import PROJECT_ROOT
from storemon_pipeline.tools.receiver import Receiver, running_receiver

SECRET = "e2e-secret"
TIMEOUT = 180


def wait(what: str, condition: Callable[[], object], timeout: float = TIMEOUT, up=None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = condition()
        if found:
            return found
        time.sleep(0.25)
    tail = up.text()[-3000:] if up is not None else ""
    raise AssertionError(f"not within {timeout:.0f} s: {what}\n{tail}")


def feeds(folder: Path, index: int) -> dict[str, list[Path]]:
    return write_feeds(delivered(index), folder / f"delivery_{index}", seed=index)


def drop(home: Path, folder: Path, index: int) -> None:
    """A poll file into incoming/, under a name of its own, written whole then renamed."""
    source = feeds(folder, index)["polls"][0]
    incoming = home / "incoming"
    incoming.mkdir(parents=True, exist_ok=True)
    partial = incoming / f".store_status_{index}.part"
    partial.write_bytes(source.read_bytes())
    partial.rename(incoming / f"store_status_{index}.csv")


def latest_poll(home: Path) -> str | None:
    try:
        return json.loads((home / "latest_poll.json").read_text())["latest_poll"]
    except (OSError, ValueError, KeyError):
        return None


def accepted_events(receiver: Receiver) -> list[tuple[str, str]]:
    return [(r.event["store_id"], r.event["event"]) for r in receiver.accepted()]


@pytest.fixture(scope="module")
def scene(tmp_path_factory):
    root = tmp_path_factory.mktemp("alerts_e2e")
    home = root / "state"
    first = feeds(root, 0)
    # the first delivery and the hours with the CLI: a state that is not empty, so `storemon up`
    # loads no sample data
    ingest = subprocess.run(
        [sys.executable, "-m", "storemon_pipeline.cli", "ingest",
         *map(str, [*first["hours"], *first["timezones"], *first["polls"]])],
        env={**os.environ, "STOREMON_HOME": str(home)}, cwd=PROJECT_ROOT,
        capture_output=True, text=True, timeout=120,
    )
    assert ingest.returncode == 0, ingest.stdout + ingest.stderr
    with running_receiver() as receiver:
        env = {"STOREMON_ALERT_WEBHOOK_URLS": receiver.url, "STOREMON_ALERT_SECRET": SECRET}
        yield root, home, receiver, env


def test_alerts_are_delivered_once_each_through_a_crash(scene):
    root, home, receiver, env = scene
    killed = Up(home, root / "up-1.log", env=env)
    try:
        killed.wait_ready()
        drop(home, root, 1)
        wait("the opened event", lambda: ("DOWN", "opened") in accepted_events(receiver),
             up=killed)
        opened = receiver.accepted()[0]
        assert opened.signed_by(SECRET)
        assert opened.key == f"{opened.event['alert_id']}:opened"
        assert opened.event["business_minutes_down"] == 100.0

        receiver.status = 503
        drop(home, root, 2)
        wait("the resolved event refused",
             lambda: any(r.key and r.key.endswith(":resolved") for r in receiver.requests),
             up=killed)
        killed.remember_children()
        children = list(killed.seen.values())
        killed.process.send_signal(signal.SIGKILL)
        killed.process.wait(30)
        gone, alive = psutil.wait_procs(children, timeout=60)
        assert not alive, f"children of the killed storemon up still run: {alive}"
    finally:
        if killed.process.poll() is None:
            killed.stop()

    receiver.status = 200
    with running_up(home, root / "up-2.log", env=env) as up:
        wait("the resolved event delivered after the restart",
             lambda: ("DOWN", "resolved") in accepted_events(receiver), up=up)
        # a receiver that stalls past the sender's timeout holds up no ingest
        receiver.stall_seconds = 8
        receiver.arrived.clear()
        drop(home, root, 3)
        wait("FINE's opened event posted", lambda: any(
            json.loads(r.body).get("store_id") == "FINE" for r in receiver.requests
        ) or receiver.arrived.is_set(), up=up)
        before = latest_poll(home)
        drop(home, root, 4)
        wait("the next ingest while the receiver stalls",
             lambda: latest_poll(home) not in (None, before), up=up)
        receiver.stall_seconds = 0
        wait("FINE's events delivered", lambda: {("FINE", "opened"), ("FINE", "resolved")}
             <= set(accepted_events(receiver)), up=up)

    by_key = receiver.accepted_by_key()
    events = accepted_events(receiver)
    assert sorted(set(events)) == [
        ("DOWN", "opened"), ("DOWN", "resolved"), ("FINE", "opened"), ("FINE", "resolved")]
    assert all(len(posts) == 1 for posts in by_key.values()), by_key  # none acknowledged twice
    for key, posts in by_key.items():
        event = posts[0].event
        assert key == f"{event['alert_id']}:{event['event']}"
        assert posts[0].signed_by(SECRET)
    # every post of an event (refused, timed out, accepted) carried its one key and body
    keys_of = {}
    for request in receiver.requests:
        keys_of.setdefault((request.event["alert_id"], request.event["event"]), set()).add(
            (request.key, request.body))
    assert all(len(forms) == 1 for forms in keys_of.values()), keys_of
    status = json.loads((home / "alerts" / "delivery.json").read_text())
    assert (status["pending"], status["dead"], status["delivered"]) == (0, 0, 4)
