"""Alerts over the API (GET /alerts, GET /stores/{id}/alerts) and their delivery in /health, in
process on a real DuckDB state the engine built from CSV feeds: ingest, evaluate (as `storemon
alerts --evaluate` does), a recovery file, evaluate again; and the page's open alerts in
headless Chromium, on the same state, served by uvicorn in a thread (no Dagster needed)."""

from __future__ import annotations

import json
import shutil
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from pathlib import Path

import duckdb
import pytest
import uvicorn
from support.browser import Browser, chromium_available
from support.faults import held_open
from support.oracle import StoreCase, write_feeds
from support.processes import free_port
from test_api import FakeDagster, client_for

from storemon_api.main import create_app
from storemon_api.settings import ApiSettings
from storemon_pipeline.engine.alerts import evaluate_alerts, read_alerts, read_outbox
from storemon_pipeline.engine.db import database
from storemon_pipeline.engine.delivery import (
    Attempt,
    DeliveryStatus,
    Post,
    record_attempts,
    write_delivery_status,
)
from storemon_pipeline.engine.ingest import ingest_paths
from storemon_pipeline.engine.instants import utc_now
from storemon_pipeline.settings import Settings

EVERY_DAY = [(day, "09:00", "21:00") for day in range(7)]  # local
AFTERNOONS = [(day, "14:00", "21:00") for day in range(7)]
CHICAGO = "America/Chicago"  # UTC-6 on 2023-03-07; also the engine's default zone
DOWN, HEALTHY, OUTSIDE, DEFAULTED = "1001", "1002", "1003", "1004"
HOOK = "https://hooks.example.com/services/T0/B0/s3cr3t-path"


def _utc(hour: int, minute: int = 0) -> datetime:
    """Tuesday 2023-03-07, UTC (09:00 in Chicago is 15:00 UTC)."""
    return datetime(2023, 3, 7, hour, minute)


STORES = [
    # active at 09:00 local, inactive at 10:00 and 12:00: down since 09:30, 150 business minutes
    StoreCase(DOWN, EVERY_DAY, CHICAGO,
              [(_utc(15), True), (_utc(16), False), (_utc(18), False)]),
    StoreCase(HEALTHY, EVERY_DAY, CHICAGO,
              [(_utc(15), True), (_utc(16), True), (_utc(17), True), (_utc(18), True)]),
    # the same polls, but the store opens at 14:00: down, yet no business time down
    StoreCase(OUTSIDE, AFTERNOONS, CHICAGO,
              [(_utc(15), True), (_utc(16), False), (_utc(18), False)]),
    # no hours (open 24x7), no time-zone row (the default zone): down since 16:30, 90 minutes
    StoreCase(DEFAULTED, [], None, [(_utc(16), True), (_utc(17), False), (_utc(18), False)]),
]
# The next file: DOWN is up at 12:40 local (resolved at the midpoint 12:20, 170 minutes);
# DEFAULTED is still down (130 minutes).
RECOVERY = {DOWN: [(_utc(18, 40), True)], DEFAULTED: [(_utc(18, 40), False)]}


def deliver(state: Settings, polls: dict[str, list[tuple[datetime, bool]]], name: str) -> None:
    """One delivery of the four feeds, ingested and then evaluated, as `storemon ingest` and
    `storemon alerts --evaluate` do."""
    cases = [StoreCase(s.store_id, s.hours, s.zone, polls.get(s.store_id, []), s.special)
             for s in STORES]
    paths = write_feeds(cases, state.state_dir / "feeds" / name)
    with database(state.duckdb_path) as con:
        results = ingest_paths(con, [*paths["hours"], *paths["special"], *paths["timezones"],
                                     *paths["polls"]])
        assert all(r.status in ("loaded", "skipped") for r in results), \
            [r.summary() for r in results]
        evaluate_alerts(con, min_down_minutes=state.alert_min_down_minutes)


def _state(folder: Path) -> Settings:
    state = Settings(home=folder)
    state.ensure_dirs()
    return state


@pytest.fixture(scope="module")
def opened(tmp_path_factory) -> Settings:
    """As of 12:00 local: DOWN and DEFAULTED have open alerts, nothing was delivered."""
    state = _state(tmp_path_factory.mktemp("alerts-opened") / "home")
    deliver(state, {s.store_id: s.polls for s in STORES}, "first")
    return state


@pytest.fixture(scope="module")
def recovered(opened, tmp_path_factory) -> Settings:
    """The recovery file evaluated; then delivery rounds as the sender records them: DOWN's
    opened event delivered, its resolved event failed once (pending), DEFAULTED's given up."""
    home = tmp_path_factory.mktemp("alerts-recovered") / "home"
    shutil.copytree(opened.state_dir, home)
    state = _state(home)
    deliver(state, RECOVERY, "recovery")
    with database(state.duckdb_path) as con:
        alerts = read_alerts(con).set_index("store_id")["alert_id"]
        down, defaulted = alerts[DOWN], alerts[DEFAULTED]
        acknowledged = [Post(HOOK, utc_now(), 200, None, 0.01)]
        failed = [Post(HOOK, utc_now(), 500, "HTTP 500", 0.01)]
        record_attempts(con, [Attempt(f"{down}:opened", posts=acknowledged),
                              Attempt(f"{down}:resolved", posts=failed)],
                        [HOOK], now=utc_now(), retry_max_hours=24)
        record_attempts(con, [Attempt(f"{defaulted}:opened", posts=failed)],
                        [HOOK], now=utc_now(), retry_max_hours=0)
    return state


@pytest.fixture(scope="module")
def client(recovered):
    with client_for(recovered, FakeDagster()) as client:
        yield client


def _by_store(body: dict) -> dict[str, dict]:
    return {alert["store_id"]: alert for alert in body["alerts"]}


# --- GET /alerts ------------------------------------------------------------------------------


def test_an_open_alert_for_a_store_down_150_business_minutes(opened):
    with client_for(opened, FakeDagster()) as client:
        answer = client.get("/alerts")
        assert answer.status_code == 200, answer.text
        body = answer.json()
        for store in (HEALTHY, OUTSIDE):
            # polled, but healthy, or down only while closed: no alert
            one = client.get(f"/stores/{store}/alerts")
            assert one.status_code == 200, one.text
            assert one.json()["alerts"] == [] and one.json()["counts"] == {"open": 0,
                                                                          "resolved": 0}
    assert body["as_of"] == "2023-03-07T18:00:00Z"
    assert body["counts"] == {"open": 2, "resolved": 0}
    # newest down run first: DEFAULTED since 16:30 UTC, DOWN since 15:30 UTC
    assert [a["store_id"] for a in body["alerts"]] == [DEFAULTED, DOWN]
    with database(opened.duckdb_path, read_only=True) as con:
        engine = read_alerts(con).set_index("store_id")
        payloads = {json.loads(p)["store_id"]: json.loads(p) for p in read_outbox(con)["payload"]}
    alert = _by_store(body)[DOWN]
    assert {k: v for k, v in alert.items() if k != "events"} == {
        "alert_id": engine.loc[DOWN, "alert_id"],
        "store_id": DOWN,
        "state": "open",
        "down_since": "2023-03-07T15:30:00Z",
        "resolved_at": None,
        "business_minutes_down": 150.0,
        "timezone": CHICAGO,
        "opened_as_of": "2023-03-07T18:00:00Z",
        "resolved_as_of": None,
        "evaluated_as_of": "2023-03-07T18:00:00Z",
        "timeline_url": f"/#store={DOWN}&as_of=2023-03-07T18%3A00%3A00Z",
    }
    assert payloads[DOWN]["business_minutes_down"] == alert["business_minutes_down"]
    [event] = alert["events"]
    assert event["event"] == "opened" and event["attempts"] == 0
    assert (event["delivered"], event["dead"], event["last_error"]) == (False, False, None)
    assert event["next_attempt_at"] and event["created_at"].endswith("Z")
    other = _by_store(body)[DEFAULTED]
    assert (other["timezone"], other["business_minutes_down"]) == (CHICAGO, 90.0)
    assert other["timezone"] == payloads[DEFAULTED]["timezone"]  # the default, as the event


def test_a_recovery_resolves_the_alert(client, recovered):
    body = client.get("/alerts").json()
    assert body["as_of"] == "2023-03-07T18:40:00Z"
    assert body["counts"] == {"open": 1, "resolved": 1}
    assert [a["store_id"] for a in body["alerts"]] == [DEFAULTED, DOWN]
    alert = _by_store(body)[DOWN]
    assert alert["state"] == "resolved"
    assert alert["down_since"] == "2023-03-07T15:30:00Z"
    assert alert["resolved_at"] == "2023-03-07T18:20:00Z"  # 12:20 local, the midpoint
    assert alert["business_minutes_down"] == 170.0
    assert (alert["opened_as_of"], alert["resolved_as_of"]) == (
        "2023-03-07T18:00:00Z", "2023-03-07T18:40:00Z")
    # the week at the alert: as of its end, as the SLA view links a store at an incident
    assert alert["timeline_url"] == f"/#store={DOWN}&as_of=2023-03-07T18%3A20%3A00Z"
    assert [e["event"] for e in alert["events"]] == ["opened", "resolved"]
    still = _by_store(body)[DEFAULTED]
    assert (still["state"], still["business_minutes_down"]) == ("open", 130.0)
    assert still["timeline_url"] == f"/#store={DEFAULTED}&as_of=2023-03-07T18%3A40%3A00Z"
    timeline = client.get(f"/stores/{DOWN}/timeline", params={"as_of": alert["resolved_at"]})
    assert timeline.status_code == 200, timeline.text  # the link's week is there to be seen


def test_state_and_store_filters(client):
    everything = client.get("/alerts").json()
    opened = client.get("/alerts", params={"state": "open"}).json()
    assert [a["store_id"] for a in opened["alerts"]] == [DEFAULTED]
    assert opened["counts"] == everything["counts"]  # the counts do not depend on the state
    resolved = client.get("/alerts", params={"state": "resolved"}).json()
    assert resolved["alerts"] == [_by_store(everything)[DOWN]]

    mine = client.get("/alerts", params={"store_id": DOWN}).json()
    assert mine["alerts"] == [_by_store(everything)[DOWN]]
    assert mine["counts"] == {"open": 0, "resolved": 1}
    assert client.get("/alerts", params={"store_id": DOWN, "state": "open"}).json()[
        "alerts"] == []
    assert client.get(f"/stores/{DOWN}/alerts").json() == mine
    assert client.get(f"/stores/{DOWN}/alerts", params={"state": "resolved"}).json() == mine
    # a filter, not a resource: a store never polled lists nothing
    nobody = client.get("/alerts", params={"store_id": "9999"})
    assert nobody.status_code == 200 and nobody.json()["alerts"] == []


def test_problems(client):
    unknown = client.get("/stores/9999/alerts")
    assert unknown.status_code == 404
    assert unknown.json() == {"detail": "no poll of store 9999 was ever loaded"}
    for path, params in (("/alerts", {"state": "closed"}),
                         (f"/stores/{DOWN}/alerts", {"state": "OPEN"})):
        bad = client.get(path, params=params)
        assert bad.status_code == 422, bad.text
        assert list(bad.json()) == ["detail"] and "state must be one of open, resolved" in \
            bad.json()["detail"]
    for path, params in (("/alerts", {"store_id": " bad"}), ("/stores/%20bad/alerts", {}),
                         ("/alerts", {"store_id": "../x"})):
        bad = client.get(path, params=params)
        assert bad.status_code == 422, bad.text
        assert list(bad.json()) == ["detail"] and "store_id must be" in bad.json()["detail"]


def test_events_delivery_state(recovered):
    """Delivered, pending after a failure, given up; the failure (which names the webhook's URL)
    only with the token: without it nothing is answered at all."""
    with client_for(recovered, FakeDagster(), api_token="s3cret") as client:
        anonymous = client.get("/alerts")
        assert anonymous.status_code == 401
        assert HOOK not in anonymous.text and "hooks.example.com" not in anonymous.text
        assert client.get(f"/stores/{DOWN}/alerts").status_code == 401
        body = client.get("/alerts", headers={"Authorization": "Bearer s3cret"}).json()
    down, defaulted = _by_store(body)[DOWN], _by_store(body)[DEFAULTED]
    opened, resolved = down["events"]
    assert (opened["event"], opened["attempts"], opened["delivered"], opened["dead"]) == (
        "opened", 1, True, False)
    assert opened["next_attempt_at"] is None and opened["last_error"] is None
    assert (resolved["event"], resolved["attempts"], resolved["delivered"], resolved["dead"]) == (
        "resolved", 1, False, False)
    assert resolved["next_attempt_at"] and resolved["last_error"] == f"{HOOK}: HTTP 500"
    [given_up] = defaulted["events"]
    assert (given_up["attempts"], given_up["delivered"], given_up["dead"]) == (1, False, True)
    assert given_up["next_attempt_at"] is None
    for event in (opened, resolved, given_up):
        assert set(event) == {"event", "created_at", "attempts", "delivered", "dead",
                              "next_attempt_at", "last_error"}  # never the URLs delivered to


def test_no_database_yet_means_no_alerts(tmp_path):
    state = _state(tmp_path / "home")
    with client_for(state, FakeDagster()) as client:
        answer = client.get("/alerts", params={"state": "open"})
        assert answer.status_code == 200, answer.text
        assert answer.json() == {"as_of": None, "counts": {"open": 0, "resolved": 0},
                                 "alerts": []}
        assert client.get(f"/stores/{DOWN}/alerts").status_code == 404
        assert client.get("/alerts", params={"state": "nope"}).status_code == 422


def test_a_file_written_before_alerts_existed_has_none(tmp_path):
    """Opened read-only, an older file is not upgraded: no alert tables, no alerts."""
    state = _state(tmp_path / "home")
    con = duckdb.connect(str(state.duckdb_path))
    con.execute("CREATE TABLE stores (store_key INTEGER, store_id VARCHAR, first_poll TIMESTAMP, "
                "last_poll TIMESTAMP)")
    con.execute("INSERT INTO stores VALUES (0, ?, ?, ?)", [DOWN, _utc(15), _utc(18)])
    con.close()
    with client_for(state, FakeDagster()) as client:
        body = client.get("/alerts").json()
        assert body == {"as_of": "2023-03-07T18:00:00Z", "counts": {"open": 0, "resolved": 0},
                        "alerts": []}
        assert client.get(f"/stores/{DOWN}/alerts").json()["alerts"] == []


def test_503_while_a_run_holds_the_store_database(recovered, tmp_path, monkeypatch):
    monkeypatch.setattr("storemon_api.alerts.READ_WAIT_SECONDS", 1.0)
    home = tmp_path / "home"
    shutil.copytree(recovered.state_dir, home)
    state = _state(home)
    with held_open(state.duckdb_path), client_for(state, FakeDagster()) as client:
        for path in ("/alerts", f"/stores/{DOWN}/alerts"):
            busy = client.get(path)
            assert busy.status_code == 503, busy.text
            assert "busy" in busy.json()["detail"] and busy.headers["retry-after"]
        assert client.get("/health").status_code == 200  # /health never opens DuckDB


def test_openapi_documents_the_alerts(client):
    schema = client.get("/openapi.json").json()
    assert {"/alerts", "/stores/{store_id}/alerts"} <= set(schema["paths"])
    responses = schema["paths"]["/stores/{store_id}/alerts"]["get"]["responses"]
    assert {"200", "401", "404", "422", "503"} <= set(responses)
    assert schema["components"]["schemas"]["AlertsResponse"].get("examples")


# --- /health: the alerts' delivery (alerts/delivery.json) -----------------------------------


def _status(state: Settings, **values) -> None:
    write_delivery_status(state.state_dir, DeliveryStatus(checked_at=utc_now(), **values))


def test_health_without_a_delivery_status_has_no_warnings(tmp_path):
    state = _state(tmp_path / "home")
    with client_for(state, FakeDagster()) as client:
        body = client.get("/health").json()
    assert body["status"] == "ok" and body["warnings"] == []
    assert body["details"]["alerts"] is None


def test_health_warns_of_dead_events_and_names_the_error_only_with_the_token(tmp_path):
    state = _state(tmp_path / "home")
    _status(state, pending=1, delivered=12, dead=3, webhooks=1,
            next_attempt_at=utc_now() + timedelta(minutes=5), last_error=f"{HOOK}: HTTP 500")
    with client_for(state, FakeDagster(), api_token="s3cret") as client:
        anonymous = client.get("/health")
        assert anonymous.status_code == 200  # dead deliveries do not stop reports
        assert anonymous.json() == {
            "status": "ok",
            "reasons": [],
            "warnings": ["3 alert events could not be delivered to a webhook and were given up "
                         "(dead)"],
            "details": None,
        }
        assert "hooks.example.com" not in anonymous.text and "http" not in anonymous.text
        known = client.get("/health", headers={"Authorization": "Bearer s3cret"}).json()
    assert known["warnings"] == anonymous.json()["warnings"]
    alerts = known["details"]["alerts"]
    assert alerts["ok"] is False
    for words in ("1 pending", "12 delivered", "3 dead", "1 webhook", f"last error: {HOOK}"):
        assert words in alerts["detail"], words


def test_health_warns_when_nothing_delivers_the_pending_events(tmp_path):
    state = _state(tmp_path / "home")
    with client_for(state, FakeDagster()) as client:
        _status(state, pending=2, delivered=5, webhooks=1,
                next_attempt_at=utc_now() - timedelta(minutes=20))
        soon = client.get("/health").json()
        assert soon["warnings"] == [] and soon["details"]["alerts"]["ok"] is True
        _status(state, pending=2, delivered=5, webhooks=1,
                next_attempt_at=utc_now() - timedelta(hours=2))
        late = client.get("/health").json()
        assert late["status"] == "ok"
        [warning] = late["warnings"]
        assert warning.startswith("2 alert events waiting for delivery to the webhooks have been "
                                  "due for more than an hour")
        assert late["details"]["alerts"]["ok"] is True  # none given up
        _status(state, pending=1, dead=1, webhooks=1,
                next_attempt_at=utc_now() - timedelta(hours=2))
        both = client.get("/health").json()["warnings"]
        assert both == [
            "1 alert event could not be delivered to a webhook and was given up (dead)",
            "1 alert event waiting for delivery to the webhooks has been due for more than an "
            "hour: nothing is delivering them (is the alert delivery sensor off?)",
        ]


# --- the page: the open alerts on the front page ----------------------------------------------


@contextmanager
def serving(state: Settings) -> Iterator[str]:
    """The API on a free loopback port, under uvicorn in a thread, with a fake Dagster."""
    app = create_app(ApiSettings(dagster_url=f"http://127.0.0.1:{free_port()}"), state,
                     FakeDagster())
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


@pytest.mark.skipif(not chromium_available(), reason="needs Debian's chromium "
                    "(apt-get install -y chromium chromium-driver)")
def test_page_lists_the_open_alerts_in_headless_chromium(opened, tmp_path, tmp_path_factory):
    """The front page lists GET /alerts?state=open: each store a link (the API's timeline_url)
    to its week at the alert, down since in UTC and in the store's zone, the business minutes;
    "No open alerts" when there are none."""
    empty = _state(tmp_path / "empty")
    # a short folder: Chromium's singleton socket path must fit in a sockaddr_un
    browser = Browser(tmp_path_factory.mktemp("chromium"))
    try:
        with serving(opened) as url:
            expected = client_for(opened, FakeDagster()).get(
                "/alerts", params={"state": "open"}).json()["alerts"]
            browser.goto(url + "/")
            browser.wait_for("document.querySelector('#alerts').dataset.state === 'open'", 60)
            rows = browser.js(
                "[...document.querySelectorAll('#alerts-open tbody tr')].map(tr => ({"
                " store: tr.dataset.storeId,"
                " href: tr.querySelector('a.store-link').getAttribute('href'),"
                " cells: [...tr.cells].map(td => td.textContent) }))"
            )
            assert [r["store"] for r in rows] == [a["store_id"] for a in expected] == [
                DEFAULTED, DOWN]
            assert [r["href"] for r in rows] == [a["timeline_url"] for a in expected]
            down = rows[1]["cells"]
            assert down[0] == DOWN
            assert down[1] == "2023-03-07 15:30:00"  # UTC
            assert down[2] == "Tue 7 Mar 09:30 America/Chicago"  # the store's time
            assert down[3] == "150.00"
            assert browser.js("document.querySelector('#alerts-message').textContent") == ""
            browser.js(f"document.querySelector('#alerts-open tr[data-store-id=\"{DOWN}\"] a')"
                       ".click()")
            browser.wait_for(
                f"(s => s.dataset.storeId === '{DOWN}' && s.dataset.state === 'ready')"
                "(document.querySelector('#timeline'))", 60)
            as_of = browser.js("document.querySelector('#timeline').dataset.asOf")
            assert datetime.fromisoformat(as_of) == datetime.fromisoformat(
                expected[1]["evaluated_as_of"])
        with serving(empty) as url:
            browser.goto(url + "/")
            browser.wait_for("document.querySelector('#alerts').dataset.state === 'none'", 60)
            assert browser.js("document.querySelector('#alerts-message').textContent") == (
                "No open alerts.")
            assert browser.js("document.querySelector('#alerts-open').hidden") is True
        assert browser.exceptions() == []
    finally:
        browser.close()
