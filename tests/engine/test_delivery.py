"""Delivering the alerts' events (engine/delivery.py) to a real HTTP receiver on loopback: one
`opened` and one `resolved` per alert and nothing for stores that were not down in their hours,
signed bodies, the same key for every post of an event, a receiver answering 503 and then 200,
a receiver that stalls past the timeout while the database stays free for an ingest, events
given up (dead) after the retry limit, and a crash between a post and its record."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path

import pytest
from support.alert_scenario import DELIVERIES, EVERY_DAY, STORES, chicago
from support.oracle import StoreCase, write_feeds
from test_alerts import Feed

from storemon_pipeline import cli
from storemon_pipeline.engine.db import database
from storemon_pipeline.engine.delivery import (
    backoff_seconds,
    deliver_due_events,
    delivery_status,
    due_events,
    post_events,
    read_delivery_status,
    signature,
)
from storemon_pipeline.settings import PROJECT_ROOT
from storemon_pipeline.tools.receiver import running_receiver

SECRET = "s3cret"
class State:
    """The alerts' state folder: a Feed (ingest + evaluation) whose connection is closed
    between deliveries, as the sender finds it."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.path = folder / "storemon.duckdb"
        self.feed = Feed(folder, STORES)
        self.feed.con.close()

    def deliver(self, polls: dict) -> None:
        with self.connect() as con:
            self.feed.con = con
            self.feed.deliver(polls)

    @contextmanager
    def connect(self):
        with database(self.path, wait_seconds=30) as con:
            yield con

    def round(self, urls: list[str], *, retry_max_hours: float = 24, **kwargs):
        return deliver_due_events(
            self.connect, self.folder, urls, secret=SECRET, retry_max_hours=retry_max_hours,
            **kwargs,
        )

    def make_due(self) -> None:
        """Time passes: every pending event is due again."""
        with self.connect() as con:
            con.execute("UPDATE alert_outbox SET next_attempt_at = TIMESTAMP '2000-01-01'")

    def outbox(self) -> list[dict]:
        with self.connect() as con:
            return con.execute(
                "SELECT event_key, attempts, delivered_at IS NOT NULL AS delivered, "
                "dead_at IS NOT NULL AS dead, last_error FROM alert_outbox ORDER BY event_key"
            ).df().to_dict("records")


@pytest.fixture
def state(tmp_path: Path) -> State:
    return State(tmp_path)


def test_one_opened_and_one_resolved_for_the_store_down_in_its_hours(state):
    with running_receiver() as receiver:
        for polls in DELIVERIES[:3]:  # DOWN down and up again
            state.deliver(polls)
            done = state.round([receiver.url])
            assert done.failed == 0 and done.status.pending == 0
        events = [r.event for r in receiver.accepted()]
        assert [(e["event"], e["store_id"]) for e in events] == [
            ("opened", "DOWN"), ("resolved", "DOWN")]
        assert events[1]["business_minutes_down"] == 150.0
        for request in receiver.accepted():
            assert request.key == f"{request.event['alert_id']}:{request.event['event']}"
            assert request.signed_by(SECRET)
            assert request.signature == signature(request.body, SECRET)
            assert request.path == "/hook"
        # nothing is due: another round posts nothing
        assert state.round([receiver.url]).posted == 0
        assert len(receiver.requests) == 2
    status = read_delivery_status(state.folder)
    assert (status.pending, status.delivered, status.dead) == (0, 2, 0)


def test_a_receiver_down_for_a_while_gets_every_event_under_one_key(state):
    with running_receiver() as receiver, running_receiver() as second:
        urls = [receiver.url, second.url]
        receiver.status = 503
        for polls in DELIVERIES[:3]:  # DOWN down and up again
            state.deliver(polls)
            state.round(urls)
            state.make_due()
        # the second receiver has both; the first refused the opened, so resolved waits
        assert [r.event["event"] for r in second.accepted()] == ["opened"]
        state.round(urls)
        state.make_due()
        assert [r.event["event"] for r in second.accepted()] == ["opened"]
        assert not receiver.accepted()
        with state.connect() as con:  # every post recorded, with its answer
            posts = con.execute(
                "SELECT webhook, status, error FROM alert_delivery_attempts ORDER BY posted_at"
            ).fetchall()
        assert len(posts) == len(receiver.requests) + len(second.requests)
        assert (receiver.url, 503, "HTTP 503") in posts and (second.url, 200, None) in posts
        pending = state.outbox()
        assert [row["delivered"] for row in pending] == [False, False]
        assert pending[0]["attempts"] >= 3 and "HTTP 503" in pending[0]["last_error"]
        receiver.status = 200
        for _ in range(3):
            state.round(urls)
            state.make_due()
        for got in (receiver, second):
            by_key = got.accepted_by_key()
            assert sorted(k.split(":")[1] for k in by_key) == ["opened", "resolved"]
            assert all(len(posts) == 1 for posts in by_key.values())  # acknowledged once each
        refused = [r for r in receiver.requests if r.status == 503]
        assert {r.key for r in refused} == {next(k for k in receiver.accepted_by_key()
                                                 if k.endswith(":opened"))}
        assert all(r.body == receiver.accepted()[0].body for r in refused)  # same body, same key
    assert [row["delivered"] for row in state.outbox()] == [True, True]


def test_a_stalled_receiver_never_holds_the_database(state, tmp_path):
    state.deliver(DELIVERIES[0])
    state.deliver(DELIVERIES[1])
    with running_receiver() as receiver:
        receiver.stall_seconds = 8  # past the sender's 5 s read timeout
        finished = threading.Event()
        outcome: dict = {}

        def deliver() -> None:
            outcome["round"] = state.round([receiver.url])
            finished.set()

        sender = threading.Thread(target=deliver)
        sender.start()
        assert receiver.arrived.wait(10)
        # while the post hangs, another process ingests into the same file at once
        late = write_feeds(
            [StoreCase("FINE", EVERY_DAY, "America/Chicago", [(chicago(7, 10, 30), True)])],
            tmp_path / "late", seed=9,
        )["polls"]
        ingest = subprocess.run(
            [sys.executable, "-m", "storemon_pipeline.cli", "ingest", "--wait", "0",
             *map(str, late)],
            env={**os.environ, "STOREMON_HOME": str(state.folder)}, cwd=PROJECT_ROOT,
            capture_output=True, text=True, timeout=120,
        )
        assert ingest.returncode == 0, ingest.stdout + ingest.stderr
        assert not finished.is_set(), "the ingest ran while the post was still waiting"
        sender.join(30)
        assert outcome["round"].failed == 1 and outcome["round"].posted == 0
    row = state.outbox()[0]
    assert (row["attempts"], row["delivered"]) == (1, False)
    assert "Timeout" in row["last_error"]
    with state.connect() as con:
        ((status, error, seconds),) = con.execute(
            "SELECT status, error, seconds FROM alert_delivery_attempts").fetchall()
    assert status is None and error.startswith("ReadTimeout") and 5 <= seconds < 7


def test_events_are_given_up_after_the_retry_limit(state):
    state.deliver(DELIVERIES[0])
    state.deliver(DELIVERIES[1])
    with running_receiver() as receiver:
        receiver.status = 500
        done = state.round([receiver.url], retry_max_hours=1e-9)
        assert done.failed == 1
    row = state.outbox()[0]
    assert (row["dead"], row["delivered"]) == (True, False)
    status = read_delivery_status(state.folder)
    assert (status.pending, status.dead) == (0, 1)
    assert "HTTP 500" in status.last_error or status.last_error is None
    with state.connect() as con:
        assert due_events(con, datetime(2100, 1, 1)) == []  # never posted again


def test_a_crash_between_post_and_record_posts_the_same_event_again(state):
    """The round's post reached the receiver, the process died before the record: the next
    round posts the same bytes under the same key."""
    state.deliver(DELIVERIES[0])
    state.deliver(DELIVERIES[1])
    with running_receiver() as receiver:
        with state.connect() as con:
            events = due_events(con, datetime(2100, 1, 1))
        post_events(events, [receiver.url], SECRET)  # ... and no record_attempts: the crash
        state.round([receiver.url])
        first, second = receiver.accepted()
        assert (first.key, first.body) == (second.key, second.body)
        assert state.round([receiver.url]).posted == 0


def test_without_a_webhook_nothing_is_posted_and_the_events_wait(state):
    state.deliver(DELIVERIES[0])
    state.deliver(DELIVERIES[1])
    done = state.round([])
    assert (done.posted, done.status.pending) == (0, 1)
    with state.connect() as con:
        assert delivery_status(con, 0).pending == 1


def test_the_back_off_grows_to_its_cap():
    waits = [backoff_seconds(n) for n in range(1, 12)]
    assert 15 <= waits[0] <= 20 and 30 <= waits[1] <= 35
    assert all(b >= a - 5 for a, b in zip(waits, waits[1:], strict=False))
    assert waits[-1] == 1800
    assert json.dumps(waits)  # plain numbers


def test_alerts_command_delivers_one_round(tmp_path, monkeypatch, capsys):
    home = tmp_path / "state"
    monkeypatch.setenv("STOREMON_HOME", str(home))
    monkeypatch.delenv("STOREMON_SHARDS", raising=False)
    monkeypatch.delenv("STOREMON_ALERT_WEBHOOK_URLS", raising=False)
    paths = write_feeds([StoreCase(s.store_id, s.hours, s.zone, DELIVERIES[0][s.store_id]
                                   + DELIVERIES[1][s.store_id]) for s in STORES], tmp_path / "f")
    assert cli.main(["ingest", *map(str, [p for ps in paths.values() for p in ps])]) == 0
    assert cli.main(["alerts", "--deliver"]) == 1  # no webhook
    with running_receiver() as receiver:
        monkeypatch.setenv("STOREMON_ALERT_WEBHOOK_URLS", f" {receiver.url} ,")
        monkeypatch.setenv("STOREMON_ALERT_SECRET", SECRET)
        capsys.readouterr()
        assert cli.main(["alerts", "--evaluate", "--deliver", "--open"]) == 0
        out = capsys.readouterr().out.splitlines()
        assert out[1] == "delivery: posted 1, delivered 1, failed 0; 0 pending, 0 dead"
        assert out[2] == "events: 0 pending, 1 delivered, 0 dead (given up) to 1 webhook(s)"
        (request,) = receiver.accepted()
        assert request.event["store_id"] == "DOWN" and request.signed_by(SECRET)
    assert read_delivery_status(home).delivered == 1
