"""The REST facade in process (FastAPI's TestClient): ids, statuses, errors, token, summary.

Dagster is replaced by a fake dagster where the point is the API's own logic, and by a closed
port where it is "Dagster is down"; tests/e2e/test_api_e2e.py runs the real thing.
"""

from __future__ import annotations

import json
import re
import shutil
import socket
import time
import uuid
import warnings
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from dagster_graphql import DagsterGraphQLClientError
from requests.exceptions import ConnectionError as RequestsConnectionError
from support.faults import held_open
from support.processes import free_port

from storemon_api.dagster_client import (
    API_RUN_TAGS,
    UNTAGGED,
    DagsterClient,
    DagsterError,
    DagsterHealth,
    DagsterUnavailable,
    RunInfo,
    _classify,
    failure_message,
)
from storemon_api.ids import MalformedReportId, parse_report_id
from storemon_api.main import STATIC_DIR, create_app
from storemon_api.settings import ApiSettings
from storemon_pipeline.engine.db import database
from storemon_pipeline.engine.explain import read_store_timeline
from storemon_pipeline.engine.history import compute_history, partition_as_of, poll_hours
from storemon_pipeline.engine.history import partition_key as partition_key_for
from storemon_pipeline.engine.report import latest_poll
from storemon_pipeline.engine.shards import reshard
from storemon_pipeline.engine.state import (
    withhold_report,
    write_latest_poll,
    write_report_sidecar,
)
from storemon_pipeline.settings import Settings

with warnings.catch_warnings():  # Starlette's note about its httpx-based client, not ours
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

RID = "3f0c2a8e-5b1d-4c7e-9a2f-6d8b1e4c0a97"
OTHER = "0b7e6a0c-2d64-4f3f-9f5e-0a7d3c2b1e99"
HEADER = (
    "store_id,uptime_last_hour,uptime_last_day,uptime_last_week,downtime_last_hour,"
    "downtime_last_day,downtime_last_week\n"
)
CSV = HEADER + (
    "0042,60.00,24.00,168.00,0.00,0.00,0.00\n"
    "a-closed,0.00,0.00,0.00,0.00,0.00,0.00\n"
    "b-half,30.00,12.00,50.00,30.00,12.00,50.00\n"
    "c-never,0.00,0.00,0.00,60.00,24.00,10.00\n"
    "d-mostly,60.00,20.00,90.00,0.00,4.00,10.00\n"
)

AS_OF = datetime(2023, 1, 25, 18, 13, 22, 479510)


class FakeDagster:
    """What ReportService needs from DagsterClient, with scripted runs."""

    url = "http://127.0.0.1:3000"
    report_job = "uptime_report_job"

    def __init__(self) -> None:
        self.runs_by_id: dict[str, RunInfo] = {}
        self.launched: list[tuple[str, dict]] = []
        self.reasons: dict[str, str] = {}
        self.daemons_down: list[str] = []

    def add(self, run_id: str, status: str, job: str = "uptime_report_job", **kw) -> None:
        self.runs_by_id[run_id] = RunInfo(
            run_id, status, job, datetime.now(UTC), None, kw.get("tags", {}), kw.get("assets")
        )

    def run(self, run_id: str) -> RunInfo | None:
        return self.runs_by_id.get(run_id)

    def runs(self, *, limit: int, run_ids=None, in_flight_with_tags=None) -> list[RunInfo]:
        runs = [r for r in self.runs_by_id.values() if run_ids is None or r.run_id in run_ids]
        if in_flight_with_tags is not None:
            runs = [r for r in runs if r.status in ("QUEUED", "STARTED") and all(
                r.tags.get(k) == v for k, v in in_flight_with_tags.items())]
        return runs[::-1][:limit]

    def failure_reason(self, run_id: str) -> str:
        return self.reasons.get(run_id, "boom")

    def launch_report(self, partition: str, tags=None) -> str:
        self.launched.append((partition, dict(tags or {})))
        run_id = RID if len(self.launched) == 1 else str(uuid.uuid4())
        self.add(run_id, "QUEUED", tags={**(tags or {}), "dagster/partition": partition})
        return run_id

    def health(self) -> DagsterHealth:
        return DagsterHealth("1.13.27", {}, True, list(self.daemons_down))

    def run_url(self, run_id: str) -> str:
        return f"{self.url}/runs/{run_id}"

    def close(self) -> None:
        pass


@pytest.fixture
def state(tmp_path) -> Settings:
    settings = Settings(home=tmp_path / "home")
    settings.ensure_dirs()
    return settings


def finish(state: Settings, run_id: str = RID, csv: str = CSV) -> Path:
    path = state.reports_dir / f"{run_id}.csv"
    path.write_text(csv)
    write_report_sidecar(state.reports_dir, run_id, as_of=AS_OF, stores=csv.count("\n") - 1,
                         partition="2023-01-25-18:00", latest_poll=AS_OF)
    return path


@pytest.fixture
def dagster() -> FakeDagster:
    return FakeDagster()


def client_for(state: Settings, dagster=None, **settings) -> TestClient:
    api_settings = ApiSettings(**{"dagster_url": f"http://127.0.0.1:{free_port()}", **settings})
    return TestClient(create_app(api_settings, state, dagster), raise_server_exceptions=False)


@pytest.fixture
def client(state, dagster) -> TestClient:
    with client_for(state, dagster) as client:
        yield client


@pytest.fixture
def down(state) -> TestClient:
    """The real dagster, pointed at a port where nothing listens: Dagster is down."""
    with client_for(state, dagster_timeout_seconds=5) as client:
        yield client


# --- report ids --------------------------------------------------------------------------


def test_report_ids_are_canonical_uuids():
    assert parse_report_id(RID) == RID
    assert parse_report_id(RID.upper()) == RID


@pytest.mark.parametrize(
    "text",
    [
        None, "", "../x", "..", "/etc/passwd", RID.replace("-", ""), "{" + RID + "}",
        "urn:uuid:" + RID, " " + RID, RID + " ", RID + "\n", RID + "/", RID[:-1] + "٧",
        RID[:-1] + "ａ", "x" * 10_000, RID + RID, RID[:-1], RID.replace("-", "/"),
        "3f0c2a8e-5b1d-4c7e-9a2f-6d8b1e4c0a9g",
    ],
)
def test_anything_else_is_malformed(text):
    with pytest.raises(MalformedReportId):
        parse_report_id(text)


@pytest.mark.parametrize(
    "path",
    [
        "/get_report?report_id=../x",
        "/get_report?report_id=..%2F..%2Fsecret.csv",
        "/get_report?report_id=" + "a" * 5000,
        "/get_report?report_id=%C3%A9",
        "/get_report",
        "/reports/not-a-uuid",
        "/reports/" + "a" * 5000 + "/csv",
        "/reports/%C3%A9t%C3%A9/summary",
        f"/reports/{RID}%00/csv",
    ],
)
def test_malformed_ids_are_422_with_a_message(client, path):
    answer = client.get(path)
    assert answer.status_code == 422, answer.text
    assert "UUID" in answer.json()["detail"]


@pytest.mark.parametrize(
    "path", ["/reports/..%2Fsecret.csv", "/reports/..%2F..%2Fsecret/csv", "/static/..%2Fsecret"]
)
def test_encoded_slashes_never_reach_a_file(client, state, path):
    (state.state_dir / "secret.csv").write_text("secret")
    answer = client.get(path)
    assert answer.status_code == 404 and "secret" not in answer.text.replace(path, "")


def test_unknown_ids_are_404(client):
    for path in (f"/get_report?report_id={RID}", f"/reports/{RID}", f"/reports/{RID}/csv",
                 f"/reports/{RID}/summary"):
        answer = client.get(path)
        assert answer.status_code == 404, (path, answer.text)
        assert RID in answer.json()["detail"]


def test_a_run_that_is_not_a_report_is_404(client, dagster):
    dagster.add(RID, "SUCCESS", job="ingest_job")
    assert client.get(f"/get_report?report_id={RID}").status_code == 404


def test_a_ui_run_materializing_the_report_is_a_report(client, dagster, state):
    dagster.add(RID, "SUCCESS", job="__ASSET_JOB", assets=(("uptime_report",),))
    finish(state)
    assert client.get(f"/get_report?report_id={RID}").text == CSV


# --- statuses ----------------------------------------------------------------------------


@pytest.mark.parametrize("status", ["QUEUED", "NOT_STARTED", "STARTING", "STARTED", "CANCELING"])
def test_queued_or_running_is_running(client, dagster, state, status):
    dagster.add(RID, status)
    if status == "STARTED":
        finish(state)  # the files exist before the run has finished: still Running
    answer = client.get("/get_report", params={"report_id": RID})
    assert answer.status_code == 200 and answer.json() == {"status": "Running"}
    assert client.get(f"/reports/{RID}/csv").status_code == 409


def test_complete_serves_the_csv(client, dagster, state):
    dagster.add(RID, "SUCCESS", tags={"dagster/partition": "2023-01-25-18:00"})
    finish(state)
    answer = client.get("/get_report", params={"report_id": RID.upper()})
    assert answer.status_code == 200
    assert answer.content == CSV.encode()
    assert answer.headers["content-type"].startswith("text/csv")
    assert answer.headers["x-report-status"] == "Complete"
    assert answer.headers["content-disposition"] == f'attachment; filename="report_{RID}.csv"'
    assert client.get(f"/reports/{RID}/csv").content == CSV.encode()

    status = client.get(f"/reports/{RID}").json()
    assert status["status"] == "Complete" and status["stores"] == 5
    assert status["as_of"] == "2023-01-25T18:13:22.479510Z"
    assert status["partition"] == "2023-01-25-18:00"
    assert status["links"] == {
        "self": f"/reports/{RID}", "csv": f"/reports/{RID}/csv",
        "summary": f"/reports/{RID}/summary", "dagster": f"http://127.0.0.1:3000/runs/{RID}",
    }


@pytest.mark.parametrize("status", ["FAILURE", "CANCELED"])
def test_failed_or_canceled_is_failed_with_the_reason(client, dagster, status):
    dagster.add(RID, status)
    dagster.reasons[RID] = "step uptime_report: no polls are loaded yet"
    answer = client.get("/get_report", params={"report_id": RID})
    assert answer.status_code == 200
    assert answer.json() == {"status": "Failed", "error": dagster.reasons[RID]}
    assert client.get(f"/reports/{RID}/csv").status_code == 409


def test_success_without_its_file_is_failed(client, dagster):
    dagster.add(RID, "SUCCESS")
    answer = client.get("/get_report", params={"report_id": RID}).json()
    assert answer["status"] == "Failed" and "STOREMON_HOME" in answer["error"]


def test_a_half_written_report_is_not_served(client, dagster, state):
    dagster.add(RID, "SUCCESS")
    (state.reports_dir / f"{RID}.csv").write_text(HEADER)  # no sidecar: not finished
    assert client.get("/get_report", params={"report_id": RID}).json()["status"] == "Failed"


def test_a_report_dagster_forgot_is_still_complete(client, state):
    finish(state)  # e.g. a new Dagster instance over an old state folder
    assert client.get(f"/get_report?report_id={RID}").text == CSV
    assert client.get(f"/reports/{RID}").json()["dagster_status"] is None


def test_list_merges_runs_and_finished_files(client, dagster, state):
    dagster.add(OTHER, "STARTED")
    finish(state, RID)
    reports = client.get("/reports").json()["reports"]
    assert {r["report_id"]: r["status"] for r in reports} == {RID: "Complete", OTHER: "Running"}


# --- trigger -----------------------------------------------------------------------------


def test_trigger_launches_the_latest_partition(client, dagster, state):
    latest = datetime(2023, 1, 25, 23, 59, 55)
    write_latest_poll(state.state_dir, latest)
    answer = client.post("/trigger_report")
    assert answer.status_code == 202
    assert answer.json() == {"report_id": RID}
    assert answer.headers["location"] == f"/reports/{RID}"
    assert dagster.launched == [
        (partition_key_for(latest), {"storemon/trigger": "api", "dagster/priority": "10"})
    ]
    assert client.get(f"/get_report?report_id={RID}").json() == {"status": "Running"}
    assert client.get(f"/reports/{RID}").json()["trigger"] == "api"


def test_api_runs_are_tagged_as_the_pipeline_names_them():
    """The API does not import the pipeline's code (Dagster only over HTTP): its copy of the
    tags must agree, and put its runs ahead of every other trigger's in the run queue."""
    from storemon_pipeline.defs.tags import PRIORITY, PRIORITY_TAG, TRIGGER_TAG, trigger_tags

    assert trigger_tags("api") == API_RUN_TAGS
    assert (TRIGGER_TAG, PRIORITY_TAG, UNTAGGED) == (
        "storemon/trigger", "dagster/priority", "ui"
    )
    assert PRIORITY["api"] > max(p for trigger, p in PRIORITY.items() if trigger != "api")


def test_list_by_trigger(client, dagster, state):
    """Every run says what launched it; a run without the tag was launched in the Dagster UI."""
    finish(state, RID)
    dagster.add(RID, "SUCCESS", tags={"storemon/trigger": "api"})
    dagster.add(OTHER, "STARTED", tags={"storemon/trigger": "sensor"})
    by_hand = str(uuid.uuid4())
    dagster.add(by_hand, "QUEUED")
    listed = {r["report_id"]: r["trigger"] for r in client.get("/reports").json()["reports"]}
    assert listed == {RID: "api", OTHER: "sensor", by_hand: "ui"}
    only = client.get("/reports", params={"trigger": "sensor"}).json()["reports"]
    assert [r["report_id"] for r in only] == [OTHER]
    assert client.get("/reports", params={"trigger": "nobody"}).status_code == 422


def test_unchanged_data_answers_at_once_with_a_new_id(client, dagster, state):
    """A finished report of the latest partition made on the same data: the trigger answers
    with a new id standing for it, already Complete; nothing is launched. ?fresh=true launches
    anyway. Every id keeps answering."""
    write_latest_poll(state.state_dir, AS_OF, "v1")
    finish(state)  # RID: partition 2023-01-25-18:00 ...
    write_report_sidecar(state.reports_dir, RID, as_of=AS_OF, stores=5,
                         partition="2023-01-25-18:00", latest_poll=AS_OF, data_version="v1")
    dagster.add(RID, "SUCCESS", tags={"dagster/partition": "2023-01-25-18:00"})
    ids = [client.post("/trigger_report").json()["report_id"] for _ in range(3)]
    assert dagster.launched == [] and len(set(ids)) == 3 and RID not in ids
    for alias in ids:
        assert client.get(f"/get_report?report_id={alias}").content == CSV.encode()
        status = client.get(f"/reports/{alias}").json()
        assert status["report_id"] == alias and status["status"] == "Complete"
        assert status["links"]["self"] == f"/reports/{alias}"
        assert status["links"]["dagster"].endswith(RID)
    fresh = client.post("/trigger_report", params={"fresh": "true"}).json()["report_id"]
    assert len(dagster.launched) == 1 and fresh not in ids
    assert dagster.launched[0][1]["storemon/data_version"] == "v1"
    # new data: a new run, not the old report
    write_latest_poll(state.state_dir, AS_OF, "v2")
    assert client.post("/trigger_report").json()["report_id"] not in ids
    assert len(dagster.launched) == 2


def test_simultaneous_triggers_share_one_run(client, dagster, state):
    write_latest_poll(state.state_dir, AS_OF, "v1")
    with ThreadPoolExecutor(10) as pool:
        answers = list(pool.map(lambda _: client.post("/trigger_report"), range(10)))
    ids = [answer.json()["report_id"] for answer in answers]
    assert len(dagster.launched) == 1 and len(set(ids)) == 10
    statuses = {client.get(f"/reports/{i}").json()["status"] for i in ids}
    assert statuses == {"Running"}
    dagster.add(RID, "SUCCESS", tags={"dagster/partition": "2023-01-25-18:00"})
    finish(state)
    assert {client.get(f"/get_report?report_id={i}").content for i in ids} == {CSV.encode()}


# --- Dagster down --------------------------------------------------------------------------


def test_dagster_down_is_503_everywhere_but_finished_reports(down, state):
    write_latest_poll(state.state_dir, AS_OF)
    for method, path in (("POST", "/trigger_report"), ("GET", "/reports"),
                         ("GET", f"/get_report?report_id={OTHER}"), ("GET", f"/reports/{OTHER}")):
        answer = down.request(method, path)
        assert answer.status_code == 503, (path, answer.text)
        assert "unreachable" in answer.json()["detail"]
        assert answer.headers["retry-after"]
    finish(state)
    assert down.get(f"/get_report?report_id={RID}").content == CSV.encode()
    assert down.get(f"/reports/{RID}/csv").content == CSV.encode()
    assert down.get(f"/reports/{RID}").json()["status"] == "Complete"
    health = down.get("/health")
    assert health.status_code == 503
    assert health.json()["status"] == "unavailable"
    assert health.json()["reasons"] == ["the Dagster webserver is unreachable"]
    details = health.json()["details"]  # no token set: the details are there
    assert not details["dagster"]["ok"] and "127.0.0.1:" in details["dagster"]["detail"]
    assert details["latest_poll"] == "2023-01-25T18:13:22.479510Z"


def test_a_dagster_that_hangs_is_503_after_the_timeout(state):
    """A port that accepts connections and never answers (a wedged webserver)."""
    with socket.socket() as hanging:
        hanging.bind(("127.0.0.1", 0))
        hanging.listen(16)
        url = f"http://127.0.0.1:{hanging.getsockname()[1]}"
        with client_for(state, dagster_url=url, dagster_timeout_seconds=1) as client:
            for method, path in (("POST", "/trigger_report"), ("GET", f"/reports/{RID}")):
                started = time.monotonic()
                answer = client.request(method, path)
                assert answer.status_code == 503, answer.text
                assert "did not answer in time" in answer.json()["detail"]
                assert time.monotonic() - started < 10


def test_launch_errors_are_told_apart():
    def wrapped(kind, detail, cause=None):
        error = DagsterGraphQLClientError(kind, detail)
        error.__cause__ = cause
        return _classify(error, "http://127.0.0.1:1")

    assert isinstance(wrapped("x", "y", RequestsConnectionError("refused")), DagsterUnavailable)
    assert isinstance(wrapped("JobNotFoundError", "no job"), DagsterUnavailable)
    assert isinstance(wrapped("PythonError", "bad"), DagsterError)
    assert isinstance(wrapped("RunConfigValidationInvalid", "bad"), DagsterError)


def test_dagster_client_maps_http_failures():
    def dagster_answering(response: httpx.Response) -> DagsterClient:
        dagster = DagsterClient("http://127.0.0.1:9", timeout=5, report_job="uptime_report_job")
        dagster._http = httpx.Client(transport=httpx.MockTransport(lambda _: response))
        return dagster

    with pytest.raises(DagsterUnavailable):
        dagster_answering(httpx.Response(502, text="bad dagster")).run(RID)
    with pytest.raises(DagsterUnavailable):
        dagster_answering(httpx.Response(200, text="<html>")).run(RID)
    with pytest.raises(DagsterError):
        dagster_answering(httpx.Response(200, json={"errors": [{"message": "no"}]})).run(RID)
    missing = {"data": {"runOrError": {"__typename": "RunNotFoundError", "message": "none"}}}
    assert dagster_answering(httpx.Response(200, json=missing)).run(RID) is None


# A failed run's events as Dagster 1.13 reports them (recorded from a real run, trimmed).
FAILED_EVENTS = json.loads("""[
 {"__typename": "EngineEvent", "message": "Started process for run (pid: 32211).", "error": null},
 {"__typename": "ExecutionStepFailureEvent", "stepKey": "uptime_report",
  "message": "Execution of step \\"uptime_report\\" failed.",
  "error": {"message": "Exceeded max_retries of 3\\n", "className": "RetryRequestedFromPolicy",
   "cause": {"message": "storemon_pipeline.engine.report.NoPollsError: no polls are loaded yet\\n",
             "className": "NoPollsError", "cause": null}}},
 {"__typename": "RunFailureEvent",
  "message": "Execution of run for \\"uptime_report_job\\" failed. Steps failed: [...].",
  "error": null}
]""")


# A run whose blocking check failed, as Dagster 1.13 reports it (shape of a real run, trimmed).
def _evaluation(name: str, severity: str, description: str, partition: str | None) -> dict:
    return {"__typename": "AssetCheckEvaluationEvent", "evaluation": {
        "checkName": name, "success": False, "severity": severity, "description": description,
        "partition": partition}}


CHECK_FOUND = "1 of 9 stores have a value outside [0, period]"
CHECK_FAILED_EVENTS = [
    _evaluation("values_within_period", "ERROR",
                f"2 partitions checked, 1 failing (2023-01-20-03:00; 2023-01-20-03:00: "
                f"{CHECK_FOUND})", None),
    _evaluation("values_within_period", "ERROR", CHECK_FOUND, "2023-01-20-03:00"),
    _evaluation("polls_fresh", "WARN", "newest poll is over 24 h before the end", None),
    {"__typename": "ExecutionStepFailureEvent", "stepKey": "uptime_report_values_within_period",
     "message": "Execution of step failed.",
     "error": {"message": "dagster._core.errors.DagsterAssetCheckFailedError: 1 blocking asset "
               "check failed with ERROR severity:\nuptime_report: values_within_period\n",
               "className": "DagsterAssetCheckFailedError", "cause": None}},
    {"__typename": "RunFailureEvent", "message": "Execution of run failed.", "error": None},
]


def test_failure_reason_names_the_blocking_checks_and_what_they_found():
    assert failure_message("FAILURE", CHECK_FAILED_EVENTS) == (
        "check values_within_period failed: 2 partitions checked, 1 failing (2023-01-20-03:00; "
        f"2023-01-20-03:00: {CHECK_FOUND})"
    )
    # a failed check that did not fail the run is not the reason
    assert failure_message("FAILURE", CHECK_FAILED_EVENTS[:3] + FAILED_EVENTS) == (
        "step uptime_report: storemon_pipeline.engine.report.NoPollsError: no polls are loaded yet"
    )


def test_a_withheld_report_is_failed_and_never_served(client, down, dagster, state):
    """A report that failed a blocking check: its sidecar is withheld, so it is Failed with
    the check's finding even while Dagster is down, and a trigger on the same data does not
    answer with it."""
    finish(state)
    write_report_sidecar(state.reports_dir, RID, as_of=AS_OF, stores=5,  # made on data "v1"
                         partition="2023-01-25-18:00", latest_poll=AS_OF, data_version="v1")
    withhold_report(state.reports_dir, RID, "values_within_period", "1 of 5 stores ...")
    assert not (state.reports_dir / f"{RID}.json").exists()
    assert (state.reports_dir / f"{RID}.csv").exists()  # kept, to be looked into
    expected = {"status": "Failed", "error": "check values_within_period failed: 1 of 5 stores ..."}
    assert down.get("/get_report", params={"report_id": RID}).json() == expected
    assert down.get(f"/reports/{RID}/csv").status_code == 409
    dagster.add(RID, "FAILURE", tags={"dagster/partition": "2023-01-25-18:00"})
    dagster.reasons[RID] = expected["error"]
    assert client.get("/get_report", params={"report_id": RID}).json() == expected
    write_latest_poll(state.state_dir, AS_OF, "v1")  # the data has not changed since
    client.post("/trigger_report")
    assert len(dagster.launched) == 1  # a run, not an alias of the withheld report


def test_failure_reason_is_the_innermost_error_of_the_failed_step():
    assert failure_message("FAILURE", FAILED_EVENTS) == (
        "step uptime_report: storemon_pipeline.engine.report.NoPollsError: no polls are loaded yet"
    )
    assert failure_message("FAILURE", FAILED_EVENTS[2:]).startswith("Execution of run")
    # the broker gone: redis-py 8 chains the socket's error, which names no service
    broker_gone = [{
        "__typename": "ExecutionStepFailureEvent", "stepKey": "plan_report", "message": "",
        "error": {
            "message": "RuntimeError: Retry limit exceeded while trying to reconnect to the "
            "Celery result store backend.\n", "className": "RuntimeError",
            "cause": {"message": "redis.exceptions.ConnectionError: Error 111 connecting to "
                      "127.0.0.1:59395. Connection refused.\n", "className": "ConnectionError",
                      "cause": {"message": "ConnectionRefusedError: [Errno 111] Connection "
                                "refused\n", "className": "ConnectionRefusedError"}}},
    }]
    assert failure_message("FAILURE", broker_gone) == (
        "step plan_report: redis.exceptions.ConnectionError: Error 111 connecting to "
        "127.0.0.1:59395. Connection refused."
    )
    canceled = [{"__typename": "RunCanceledEvent", "message": "Run was canceled."}]
    assert failure_message("CANCELED", canceled) == "Run was canceled."
    assert "no error" in failure_message("FAILURE", [])


# --- token -----------------------------------------------------------------------------------


def test_token_guards_everything_but_health_docs_and_the_page(state, dagster):
    finish(state)
    dagster.add(RID, "SUCCESS")
    with client_for(state, dagster, api_token="s3cret") as client:
        for method, path in (("POST", "/trigger_report"), ("GET", "/reports"),
                             ("GET", f"/reports/{RID}"), ("GET", f"/reports/{RID}/csv"),
                             ("GET", f"/reports/{RID}/summary"),
                             ("GET", f"/get_report?report_id={RID}")):
            for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "s3cret"},
                            {"Authorization": "Basic s3cret"}):
                answer = client.request(method, path, headers=headers)
                assert answer.status_code == 401, (path, headers)
                assert answer.headers["www-authenticate"] == "Bearer"
        good = {"Authorization": "Bearer s3cret"}
        assert client.get(f"/get_report?report_id={RID}", headers=good).text == CSV
        assert client.get("/reports", headers=good).status_code == 200
        for public in ("/health", "/", "/static/app.js", "/docs", "/openapi.json"):
            assert client.get(public).status_code in (200, 503), public
            assert client.get(public).status_code != 401


def test_an_empty_token_means_no_token(state, dagster):
    with client_for(state, dagster, api_token="") as client:
        assert client.get("/reports").status_code == 200


# --- health, summary, docs, page ----------------------------------------------------------------


def test_health_ok(client, dagster, state):
    write_latest_poll(state.state_dir, AS_OF)
    answer = client.get("/health")
    assert answer.status_code == 200, answer.text
    assert answer.json()["status"] == "ok" and answer.json()["reasons"] == []
    assert answer.json()["details"]["latest_poll"] == "2023-01-25T18:13:22.479510Z"


def test_health_names_what_is_wrong(client, dagster, state):
    dagster.daemons_down.append("QUEUED_RUN_COORDINATOR")
    state.state_dir.rename(state.state_dir.with_name("moved"))
    answer = client.get("/health")
    assert answer.status_code == 503
    body = answer.json()
    assert body["status"] == "unavailable" and body["details"]["latest_poll"] is None
    assert body["reasons"] == [
        "the Dagster daemon is not running: queued reports will not start",
        "the state folder is not writable",
    ]
    assert "QUEUED_RUN_COORDINATOR" in body["details"]["dagster"]["detail"]


def test_health_without_the_token_leaks_nothing(state, dagster):
    """With a token set, anyone still learns ok / not ok and why, in words; only the token
    shows where the state folder is, which versions run, and what exactly failed."""
    dagster.daemons_down.append("QUEUED_RUN_COORDINATOR")
    with client_for(state, dagster, api_token="s3cret") as client:
        anonymous = client.get("/health")
        assert anonymous.status_code == 503
        assert anonymous.json() == {
            "status": "unavailable",
            "reasons": ["the Dagster daemon is not running: queued reports will not start"],
            "warnings": [],
            "details": None,
        }
        for leak in (str(state.state_dir), "1.13", "127.0.0.1", "Traceback", "QUEUED_RUN"):
            assert leak not in anonymous.text
        known = client.get("/health", headers={"Authorization": "Bearer s3cret"}).json()
        assert str(state.state_dir) in known["details"]["state_folder"]["detail"]
        assert "1.13.27" not in known["details"]["dagster"]["detail"]  # a problem, not a version
        assert "QUEUED_RUN_COORDINATOR" in known["details"]["dagster"]["detail"]


def test_summary_distribution_and_worst_stores(client, dagster, state):
    dagster.add(RID, "SUCCESS")
    finish(state)
    summary = client.get(f"/reports/{RID}/summary", params={"worst": 3}).json()
    assert summary["stores"] == 5
    assert summary["stores_with_business_time"] == 4  # a-closed had no business time
    assert summary["stores_with_full_uptime"] == 1
    assert len(summary["bins"]) == 20 and summary["bins"][-1] == {
        "lower": 95, "upper": 100, "stores": 1
    }
    assert {b["lower"]: b["stores"] for b in summary["bins"] if b["stores"]} == {
        0: 1, 50: 1, 90: 1, 95: 1
    }
    assert [w["store_id"] for w in summary["worst"]] == ["c-never", "b-half", "d-mostly"]
    assert summary["worst"][1]["uptime_percent"] == 50.0
    assert summary["overall_uptime_percent"] == round(100 * 308 / 378, 2)
    assert client.get(f"/reports/{RID}/summary", params={"worst": 0}).status_code == 422


def test_summary_keeps_store_ids_as_text(client, dagster, state):
    dagster.add(RID, "SUCCESS")
    finish(state, csv=HEADER + "0042,0,0,1.00,0,0,9.00\nNA,0,0,5.00,0,0,5.00\n")
    worst = client.get(f"/reports/{RID}/summary").json()["worst"]
    assert [w["store_id"] for w in worst] == ["0042", "NA"]


def test_summary_of_a_report_without_stores(client, dagster, state):
    dagster.add(RID, "SUCCESS")
    finish(state, csv=HEADER)
    summary = client.get(f"/reports/{RID}/summary").json()
    assert summary["stores"] == 0 and summary["worst"] == []
    assert summary["median_uptime_percent"] is None and summary["overall_uptime_percent"] is None


def test_openapi_documents_models_and_examples(client):
    schema = client.get("/openapi.json").json()
    paths = schema["paths"]
    assert {"/trigger_report", "/get_report", "/reports", "/reports/{report_id}",
            "/reports/{report_id}/csv", "/reports/{report_id}/summary", "/health"} <= set(paths)
    assert paths["/trigger_report"]["post"]["responses"]["202"]
    assert "text/csv" in paths["/get_report"]["get"]["responses"]["200"]["content"]
    components = schema["components"]["schemas"]
    for model in ("TriggerResponse", "ReportStatus", "UptimeSummary", "Health", "Problem"):
        assert components[model].get("examples"), model
    assert "HTTPBearer" in schema["components"]["securitySchemes"]


def test_docs_and_page_need_no_internet(client):
    assert "/static/app.js" in client.get("/").text
    for path in STATIC_DIR.iterdir():
        urls = set(re.findall(r"https?://[^\s\"'`)]+", path.read_text()))
        assert urls <= {"http://www.w3.org/2000/svg"}, (path.name, urls)  # a namespace, not a fetch
    pytest.importorskip("swagger_ui_bundle")
    docs = client.get("/docs").text
    assert "/docs-assets/swagger-ui-bundle.js" in docs and "cdn" not in docs.lower()
    assert client.get("/docs-assets/swagger-ui-bundle.js").status_code == 200


# --- a store's timeline and the fleet's history (real DuckDB files of the sample data) ------


@pytest.fixture(scope="module")
def explained(sample_state, tmp_path_factory) -> Settings:
    """The sample in one file, with the history of its three newest partitions (run RID)."""
    home = tmp_path_factory.mktemp("explained") / "home"
    shutil.copytree(sample_state, home)
    settings = Settings(home=home)
    settings.ensure_dirs()
    with database(settings.duckdb_path) as con:
        newest = latest_poll(con)
        hours = poll_hours(con)[-3:]
        compute_history(
            con, settings.history_path, {h: partition_as_of(h, newest) for h in hours}, RID
        )
    return settings


def _a_store(settings: Settings) -> str:
    with database(settings.duckdb_path, read_only=True) as con:
        return con.execute("SELECT min(store_id) FROM stores").fetchone()[0]


def test_timeline_is_the_stored_partition_it_names(explained, dagster):
    store = _a_store(explained)
    with client_for(explained, dagster) as client:
        history = client.get(f"/stores/{store}/history").json()["rows"]
        assert len(history) == 3
        for row in (history[-1], history[0]):
            params = {} if row is history[-1] else {"as_of": row["as_of"]}
            timeline = client.get(f"/stores/{store}/timeline", params=params)
            assert timeline.status_code == 200, timeline.text
            body = timeline.json()
            assert body["as_of"].replace("+00:00", "Z") == row["as_of"].replace("+00:00", "Z")
            assert body["values"] == {k: v for k, v in row.items() if k.startswith(("up", "down"))}
            assert body["source"]["partition"] == row["partition"]
            assert body["source"]["run_id"] == RID
            assert body["source"]["dagster_run_url"].endswith(f"/runs/{RID}")
            assert row["partition"].replace(":", "%3A") in body["source"]["dagster_partition_url"]
        elsewhere = client.get(
            f"/stores/{store}/timeline", params={"as_of": "2023-01-22T10:00:00Z"}
        ).json()
        assert elsewhere["source"] is None and elsewhere["values"] is not None
        assert client.get("/stores/9999999/timeline").status_code == 404
        assert client.get("/stores/%20bad/timeline").status_code == 422
        schema = client.get("/openapi.json").json()
        assert {"/stores/{store_id}/timeline", "/fleet/history"} <= set(schema["paths"])


def test_timeline_names_the_special_dates_of_its_week(explained, dagster):
    """The sample's special dates (data/special_hours.csv): a closed date, an overnight one, one
    of a store without weekly hours, each with the weekly rows it replaced as the tables hold
    them; a store without special rows has none."""
    with database(explained.duckdb_path, read_only=True) as con:
        def store_where(condition: str) -> tuple[str, str]:
            store, day = con.execute(
                "SELECT store_id, local_date::VARCHAR FROM special_hours "
                f"WHERE local_date BETWEEN DATE '2023-01-19' AND DATE '2023-01-24' AND {condition} "
                "ORDER BY ALL LIMIT 1"
            ).fetchone()
            return store, day

        closed = store_where("start_sec IS NULL AND store_id IN (SELECT store_id FROM "
                             "business_hours) AND store_id NOT IN (SELECT store_id FROM "
                             "special_hours WHERE start_sec IS NOT NULL)")
        overnight = store_where("end_sec <= start_sec")
        all_week = store_where("store_id NOT IN (SELECT store_id FROM business_hours)")
        plain = con.execute("SELECT min(store_id) FROM stores WHERE store_id NOT IN "
                            "(SELECT store_id FROM special_hours)").fetchone()[0]
        weekly = {
            (store, day): [
                tuple(f"{sec // 3600:02d}:{sec % 3600 // 60:02d}:{sec % 60:02d}" for sec in row)
                for row in con.execute(
                    "SELECT start_sec, end_sec FROM business_hours WHERE store_id = ? "
                    "AND day_of_week = isodow(?::DATE) - 1 ORDER BY ALL",
                    [store, day],
                ).fetchall()
            ]
            for store, day in (closed, overnight, all_week)
        }
    with client_for(explained, dagster) as client:
        def special_date(store: str, day: str) -> dict:
            body = client.get(f"/stores/{store}/timeline").json()
            [found] = [d for d in body["special_dates"] if d["date"] == day]
            replaced = [(r["start_local"], r["end_local"]) for r in found["replaced_weekly"]]
            assert replaced == weekly[store, day]
            assert found["replaced_open_24x7"] == body["open_24x7"]
            return found

        shut = special_date(*closed)
        assert shut["closed"] and shut["windows"] == [] and shut["replaced_weekly"]
        late = special_date(*overnight)
        assert not late["closed"]
        assert any(w["end_local"] <= w["start_local"] for w in late["windows"])
        open_24x7 = special_date(*all_week)
        assert open_24x7["replaced_open_24x7"] and open_24x7["replaced_weekly"] == []
        assert all(d["reason"] for d in (shut, late, open_24x7))
        assert client.get(f"/stores/{plain}/timeline").json()["special_dates"] == []
        schema = client.get("/openapi.json").json()["components"]["schemas"]
        assert schema["SpecialDate"]["properties"]["replaced_weekly"]["description"]
        assert "special_dates" in schema["StoreTimelineResponse"]["required"]


def test_timeline_reads_the_stores_shard(explained, tmp_path):
    """With shards the store's own shard file answers, with the same timeline."""
    home = tmp_path / "home"
    shutil.copytree(explained.home, home)
    reshard(home, 3)
    one, three = (
        read_store_timeline(
            settings.state_dir, settings.shard_paths, settings.history_path, _a_store(explained),
            AS_OF, wait_seconds=settings.lock_wait_seconds,
        )
        for settings in (explained, Settings(home=home, shards=3))
    )
    assert one[0].as_json() == three[0].as_json()


def test_fleet_history_is_the_share_of_all_business_time(explained, dagster):
    with client_for(explained, dagster) as client:
        rows = client.get("/fleet/history").json()["rows"]
        assert [r["stores"] for r in rows] == [1500, 1500, 1500]
        with database(explained.history_path, read_only=True) as con:
            expected = con.execute(
                "SELECT uptime_week_us / business_week_us FROM uptime_report_partitions "
                "ORDER BY partition_hour"
            ).fetchall()
        assert [r["uptime_share_week"] for r in rows] == pytest.approx([e[0] for e in expected])
        assert all(0 <= r["uptime_share_hour"] <= 1 for r in rows)
        newest = rows[-1]["partition"]  # YYYY-MM-DD-HH:MM
        only = client.get("/fleet/history", params={"from": f"{newest[:10]}T{newest[11:]}Z"})
        assert [r["partition"] for r in only.json()["rows"]] == [rows[-1]["partition"]]


def test_timeline_is_503_while_a_run_holds_the_store_database(explained, dagster, monkeypatch):
    """Another process writes the DuckDB file (as a run does): the timeline waits a moment, then
    says so with a 503, not a hang; once the file is free it answers."""
    monkeypatch.setattr("storemon_api.stores.READ_WAIT_SECONDS", 1.0)
    store = _a_store(explained)
    with held_open(explained.duckdb_path), client_for(explained, dagster) as client:
        busy = client.get(f"/stores/{store}/timeline")
        assert busy.status_code == 503, busy.text
        assert "busy" in busy.json()["detail"] and busy.headers["retry-after"]
    with client_for(explained, dagster) as client:
        assert client.get(f"/stores/{store}/timeline").status_code == 200
