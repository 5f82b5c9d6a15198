"""The REST facade end to end: real Dagster webserver + daemon and the API under uvicorn, on
loopback, over a temporary state folder loaded with the sample data (fixture `api_stack`).

The tests share one stack and run in file order; the last one stops the Dagster webserver.
"""

from __future__ import annotations

import http.client
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlsplit

import httpx
import pytest
from support.browser import Browser, chromium_available
from support.stack import BIN, REPORT_TIMEOUT, ROOT, wait_for_report

SECRET = "top-secret-marker-4f1e"
LATENCIES: dict[str, float] = {}


@pytest.fixture(scope="module")
def api(api_stack) -> httpx.Client:
    with httpx.Client(base_url=api_stack.api_url, timeout=60) as client:
        yield client


@pytest.fixture(scope="module")
def first_report(api_stack, api) -> dict:
    """One report through the classic contract: trigger, poll /get_report, download."""
    started = time.monotonic()
    answer = api.post("/trigger_report")
    assert answer.status_code == 202, answer.text
    assert set(answer.json()) == {"report_id"}
    report_id = answer.json()["report_id"]
    assert answer.headers["location"] == f"/reports/{report_id}"

    deadline = started + REPORT_TIMEOUT
    polls = 0
    while True:
        got = api.get("/get_report", params={"report_id": report_id})
        assert got.status_code == 200, got.text
        if got.headers["content-type"].startswith("text/csv"):
            break
        assert got.json() == {"status": "Running"}
        assert time.monotonic() < deadline, "the report never completed"
        polls += 1
        time.sleep(0.2)
    LATENCIES["one report, trigger -> Complete"] = time.monotonic() - started
    print(f"\ntrigger -> Complete: {time.monotonic() - started:.1f} s ({polls} polls)")
    return {"id": report_id, "response": got}


def test_health_is_ok_with_the_latest_poll(api_stack, api):
    health = api.get("/health")
    assert health.status_code == 200, health.text
    body = health.json()
    assert body["status"] == "ok" and body["reasons"] == []
    details = body["details"]
    assert details["dagster"]["ok"] and details["state_folder"]["ok"]
    assert details["latest_poll"].startswith("2023-01-")


def test_report_csv_is_byte_identical_to_the_cli(api_stack, api, first_report, tmp_path):
    report_id, response = first_report["id"], first_report["response"]
    assert response.headers["x-report-status"] == "Complete"
    assert response.headers["content-disposition"] == (
        f'attachment; filename="report_{report_id}.csv"'
    )
    status = api.get(f"/reports/{report_id}").json()
    assert status["status"] == "Complete" and status["dagster_status"] == "SUCCESS"
    assert status["stores"] == response.text.count("\n") - 1
    assert status["partition"] and status["created"] and status["requested"]

    cli_csv = tmp_path / "cli.csv"
    subprocess.run(
        [str(BIN / "storemon"), "report", "--as-of", status["as_of"], "--out", str(cli_csv)],
        env=api_stack.env(), cwd=ROOT, check=True, capture_output=True, timeout=300,
    )
    assert response.content == cli_csv.read_bytes()
    assert api.get(f"/reports/{report_id}/csv").content == cli_csv.read_bytes()


def test_store_history_holds_the_reported_partition(api, first_report):
    """The report run wrote its partition's rows to the history; the endpoint reads them back:
    the values of the CSV. The CLI loaded the data, so the API added the partition itself."""
    header, first_row = first_report["response"].text.splitlines()[:2]
    store, *values = first_row.split(",")
    status = api.get(f"/reports/{first_report['id']}").json()
    history = api.get(f"/stores/{store}/history")
    assert history.status_code == 200, history.text
    (row,) = [r for r in history.json()["rows"] if r["partition"] == status["partition"]]
    assert [row[name] for name in header.split(",")[1:]] == [float(v) for v in values]
    assert api.get("/stores/not-a-store/history").status_code == 404
    assert api.get("/stores/%20bad/history").status_code == 422


def test_unchanged_data_is_answered_at_once(api, first_report):
    """The data has not changed since the first report: a trigger's id is Complete at once (no
    Dagster run), unique, and serves that report's CSV."""
    started = time.monotonic()
    answer = api.post("/trigger_report")
    got = api.get("/get_report", params={"report_id": answer.json()["report_id"]})
    LATENCIES["unchanged data, trigger -> Complete"] = time.monotonic() - started
    assert answer.json()["report_id"] != first_report["id"]
    assert got.headers["x-report-status"] == "Complete"
    assert got.content == first_report["response"].content


def test_a_trigger_joins_an_equivalent_report_in_flight(api_stack, api, first_report):
    """New data (a poll file loaded): the first trigger launches a run, the next one, while it
    is queued or running, joins it instead of queueing another."""
    feed = api_stack.home / "late.csv"
    feed.write_text("store_id,status,timestamp_utc\njoiner,active,2023-01-26 00:10:00 UTC\n")
    subprocess.run([str(BIN / "storemon"), "ingest", str(feed)], env=api_stack.env(), cwd=ROOT,
                   check=True, capture_output=True, timeout=300)
    first = api.post("/trigger_report").json()["report_id"]
    second = api.post("/trigger_report").json()["report_id"]
    assert first != second
    statuses = [wait_for_report(api, i) for i in (first, second)]
    assert [s["status"] for s in statuses] == ["Complete", "Complete"]
    assert statuses[1]["links"]["dagster"] == statuses[0]["links"]["dagster"]  # one run
    assert statuses[0]["partition"] == "2023-01-26-00:00"
    csvs = [api.get(f"/reports/{i}/csv").content for i in (first, second)]
    assert csvs[0] == csvs[1] and b"joiner" in csvs[0]


def test_ten_simultaneous_fresh_triggers_all_complete(api, first_report):
    """?fresh=true: ten real runs through the queue, one after another."""
    started = time.monotonic()
    with ThreadPoolExecutor(10) as pool:
        answers = list(pool.map(lambda _: api.post("/trigger_report?fresh=true"), range(10)))
    assert [a.status_code for a in answers] == [202] * 10, [a.text for a in answers]
    ids = [a.json()["report_id"] for a in answers]
    assert len(set(ids)) == 10

    with ThreadPoolExecutor(10) as pool:
        finals = list(pool.map(lambda i: wait_for_report(api, i), ids))
    LATENCIES["ten at once, all Complete"] = time.monotonic() - started
    print(f"\nten simultaneous triggers -> all Complete: {time.monotonic() - started:.1f} s")
    assert [f["status"] for f in finals] == ["Complete"] * 10, [f.get("error") for f in finals]
    contents = {api.get(f"/reports/{report_id}/csv").content for report_id in ids}
    assert len(contents) == 1  # the same data, the same partition: the same report


def test_list_and_summary(api, first_report):
    listed = api.get("/reports").json()["reports"]
    assert first_report["id"] in [r["report_id"] for r in listed]
    requested = [r["requested"] for r in listed]
    assert requested == sorted(requested, reverse=True)

    summary = api.get(f"/reports/{first_report['id']}/summary", params={"worst": 5}).json()
    assert sum(b["stores"] for b in summary["bins"]) == summary["stores_with_business_time"]
    assert len(summary["worst"]) == 5
    shares = [w["uptime_percent"] for w in summary["worst"]]
    assert shares == sorted(shares)


HOSTILE_TARGETS = [
    "/reports/../secret.csv",
    "/reports/..%2F..%2Fsecret.csv",
    "/reports/..%2fsecret/csv",
    "/reports/%2e%2e%2fsecret/csv",
    "/reports/%2e%2e/secret.csv",
    "/reports/..%5csecret/csv",
    "/reports/" + "a" * 5000,
    "/reports/" + "a" * 5000 + "/csv",
    "/reports/%C3%A9t%C3%A9/csv",
    "/reports/3f0c2a8e-5b1d-4c7e-9a2f-6d8b1e4c0a9%D9%A7/csv",
    "/reports/3f0c2a8e-5b1d-4c7e-9a2f-6d8b1e4c0a97%00/csv",
    "/reports/3f0c2a8e-5b1d-4c7e-9a2f-6d8b1e4c0a97%2F..%2F..%2Fsecret/csv",
    "/reports/%7B3f0c2a8e-5b1d-4c7e-9a2f-6d8b1e4c0a97%7D/csv",
    "/get_report?report_id=../secret",
    "/get_report?report_id=..%2F..%2Fsecret.csv",
    "/get_report?report_id=%2Fetc%2Fpasswd",
    "/get_report?report_id=" + "f" * 10000,
    "/get_report?report_id=%E2%80%AE3f0c2a8e-5b1d-4c7e-9a2f-6d8b1e4c0a97",
    "/get_report?report_id=3f0c2a8e5b1d4c7e9a2f6d8b1e4c0a97",
    "/get_report?report_id=urn:uuid:3f0c2a8e-5b1d-4c7e-9a2f-6d8b1e4c0a97",
    "/get_report?report_id=",
    "/get_report",
    "/get_report?report_id=3f0c2a8e-5b1d-4c7e-9a2f-6d8b1e4c0a97",  # well-formed, unknown
    "/reports/3f0c2a8e-5b1d-4c7e-9a2f-6d8b1e4c0a97",
    "/reports/3f0c2a8e-5b1d-4c7e-9a2f-6d8b1e4c0a97/csv",
    "/reports/3f0c2a8e-5b1d-4c7e-9a2f-6d8b1e4c0a97/summary",
    "/static/../secret.csv",
    "/static/..%2F..%2Fsecret.csv",
    "/static/%2e%2e/%2e%2e/home/secret.csv",
]


@pytest.mark.parametrize("target", HOSTILE_TARGETS)
def test_hostile_and_unknown_ids_are_404_or_422(api_stack, target):
    """Sent byte for byte (http.client does not normalise paths, unlike httpx)."""
    for folder in (api_stack.home, api_stack.home / "reports"):
        (folder / "secret.csv").write_text(SECRET)
    url = urlsplit(api_stack.api_url)
    connection = http.client.HTTPConnection(url.hostname, url.port, timeout=30)
    try:
        connection.request("GET", target)
        response = connection.getresponse()
        body = response.read().decode("utf-8", "replace")
    finally:
        connection.close()
    assert response.status in (404, 422), (target, response.status, body)
    assert SECRET not in body
    assert "Traceback" not in body


def test_token_is_required_when_set(api_stack, first_report):
    # Through the other entry point, `python -m storemon_api --dagster-url ...` (serve()).
    url = api_stack.start_api("api-with-token", serve=True, STOREMON_API_TOKEN="s3cret-token")
    report_id = first_report["id"]
    with httpx.Client(base_url=url, timeout=60) as client:
        for path in ("/reports", f"/reports/{report_id}", f"/get_report?report_id={report_id}"):
            missing = client.get(path)
            assert missing.status_code == 401 and missing.headers["www-authenticate"] == "Bearer"
            wrong = client.get(path, headers={"Authorization": "Bearer nope"})
            assert wrong.status_code == 401
        assert client.post("/trigger_report").status_code == 401
        good = {"Authorization": "Bearer s3cret-token"}
        assert client.get("/reports", headers=good).status_code == 200
        got = client.get(f"/get_report?report_id={report_id}", headers=good)
        assert got.status_code == 200 and got.content == first_report["response"].content
        for public in ("/health", "/", "/static/app.js", "/static/style.css", "/docs"):
            assert client.get(public).status_code == 200, public


@pytest.mark.skipif(not chromium_available(), reason="needs Debian's chromium "
                    "(apt-get install -y chromium chromium-driver)")
def test_page_trigger_watch_download_in_headless_chromium(api_stack, api, tmp_path):
    browser = Browser(tmp_path)
    try:
        browser.goto(api_stack.api_url + "/")
        browser.wait_for("document.querySelector('#health').dataset.status === 'ok'", 60)
        browser.wait_for(
            "document.querySelectorAll('#reports tbody tr[data-report-id]').length > 0", 60
        )
        browser.js("document.querySelector('#trigger').click()")
        report_id = browser.wait_for("document.querySelector('#current-id').textContent", 30)
        status = browser.wait_for(
            "(s => ['Complete', 'Failed'].includes(s) && s)"
            "(document.querySelector('#current-status').dataset.status)",
            REPORT_TIMEOUT,
        )
        assert status == "Complete", browser.js("document.querySelector('#current').innerText")
        browser.wait_for("document.querySelectorAll('#chart svg rect.bar').length === 20", 30)
        assert browser.js("document.querySelectorAll('#worst tbody tr').length") == 10
        browser.wait_for(
            f"!!document.querySelector('#reports tbody tr[data-report-id=\"{report_id}\"]')", 30
        )

        browser.js("document.querySelector('#download').click()")
        target = browser.downloads / f"report_{report_id}.csv"
        deadline = time.monotonic() + 60
        while not target.exists() and time.monotonic() < deadline:
            time.sleep(0.2)
        assert target.exists(), list(browser.downloads.iterdir())
        assert target.read_bytes() == api.get(f"/reports/{report_id}/csv").content
        browser.screenshot(tmp_path / "page.png")
        assert browser.exceptions() == []
    finally:
        browser.close()


def test_dagster_down_gives_503_but_finished_reports_still_download(api_stack, api, first_report):
    """Last: stops the Dagster webserver for good."""
    api_stack.stop_webserver()
    report_id = first_report["id"]
    for method, path in (
        ("POST", "/trigger_report?fresh=true"),
        ("GET", "/reports"),
        ("GET", "/get_report?report_id=3f0c2a8e-5b1d-4c7e-9a2f-6d8b1e4c0a97"),
        ("GET", "/reports/3f0c2a8e-5b1d-4c7e-9a2f-6d8b1e4c0a97"),
    ):
        answer = api.request(method, path)
        assert answer.status_code == 503, (path, answer.text)
        assert "unreachable" in answer.json()["detail"], answer.text
    health = api.get("/health")
    assert health.status_code == 503 and health.json()["status"] == "unavailable"
    assert any("unreachable" in reason for reason in health.json()["reasons"])

    got = api.get("/get_report", params={"report_id": report_id})
    assert got.status_code == 200 and got.headers["x-report-status"] == "Complete"
    assert got.content == first_report["response"].content
    assert api.get(f"/reports/{report_id}/csv").content == got.content
    assert api.get(f"/reports/{report_id}").json()["status"] == "Complete"
    assert api.get(f"/reports/{report_id}/summary").status_code == 200
    # the data has not changed since the last report: a trigger is answered from the files
    unchanged = api.post("/trigger_report")
    assert unchanged.status_code == 202, unchanged.text
    again = api.get("/get_report", params={"report_id": unchanged.json()["report_id"]})
    assert again.headers["x-report-status"] == "Complete"
    assert b"joiner" in again.content  # the newest data (loaded by the join test)


def test_print_latencies():
    """Not a check: the figures, for `pytest -s tests/e2e/test_api_e2e.py`."""
    for what, seconds in LATENCIES.items():
        print(f"{what}: {seconds:.1f} s")

