"""The REST facade end to end: real Dagster webserver + daemon and the API under uvicorn, on
loopback, over a temporary state folder loaded with the sample data (fixture `api_stack`).

The tests share one stack and run in file order; the last one stops the Dagster webserver.
"""

from __future__ import annotations

import csv
import http.client
import json
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
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

    # the store's timeline as of that partition's as-of: the same numbers, made by that run
    timeline = api.get(f"/stores/{store}/timeline", params={"as_of": row["as_of"]})
    assert timeline.status_code == 200, timeline.text
    body = timeline.json()
    assert [body["values"][name] for name in header.split(",")[1:]] == [float(v) for v in values]
    assert body["source"]["partition"] == status["partition"]
    assert body["source"]["run_id"] == first_report["id"]
    assert api.get(body["source"]["dagster_run_url"]).status_code == 200  # the UI's run page


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


# A store's week on the page. Everything the test reads from the DOM, in one evaluation: each
# day row's width (its `rect.span`, the whole local day) and bounds, and the summed on-screen
# widths of the up and down bands. Widths are CSS pixels as laid out (getBoundingClientRect),
# not SVG units.
WEEK_DOM = """(() => {
  const width = (node) => node.getBoundingClientRect().width;
  const total = (selector) => [...document.querySelectorAll(selector)]
    .reduce((sum, node) => sum + width(node), 0);
  return {
    days: [...document.querySelectorAll('#timeline .day')].map((day) => ({
      start: day.dataset.start, end: day.dataset.end,
      width: width(day.querySelector('rect.span')),
    })),
    up: total('#timeline rect.band.up'),
    down: total('#timeline rect.band.down'),
    used: document.querySelectorAll('#timeline .poll.used').length,
    unused: document.querySelectorAll('#timeline .poll.unused').length,
    values: Object.fromEntries([...document.querySelectorAll('#store-values [data-field]')]
      .map((cell) => [cell.dataset.field, Number(cell.dataset.value)])),
  };
})()"""


def _hours(start: str, end: str) -> float:
    return (datetime.fromisoformat(end) - datetime.fromisoformat(start)).total_seconds() / 3600


def _open_store(browser: Browser, store: str) -> None:
    """Wait until the page shows this store's week and its history chart."""
    browser.wait_for(
        f"(s => s.dataset.storeId === {json.dumps(store)} && s.dataset.state === 'ready')"
        "(document.querySelector('#timeline'))", 60,
    )
    browser.wait_for("document.querySelector('#store-history').dataset.state === 'ready'", 60)


@pytest.mark.skipif(not chromium_available(), reason="needs Debian's chromium "
                    "(apt-get install -y chromium chromium-driver)")
def test_page_explains_a_store_week_in_headless_chromium(api_stack, api, first_report, tmp_path):
    """Search a store, see its week (bands as wide as the values say, polls, the six
    values), its history and the fleet's; follow a link from the worst stores; errors are
    messages on the page, not exceptions. Keeps a screenshot of the week (store_week.png)."""
    summary = api.get(f"/reports/{first_report['id']}/summary", params={"worst": 10}).json()
    # stores down last week, with business time in the last day of some partition (a point on
    # their history chart)
    worst = [
        w for w in summary["worst"]
        if w["downtime_last_week"] > 0 and any(
            row["uptime_last_day"] + row["downtime_last_day"] > 0
            for row in api.get(f"/stores/{w['store_id']}/history").json()["rows"]
        )
    ]
    assert len(worst) >= 2, summary["worst"]
    browser = Browser(tmp_path)
    try:
        browser.set_viewport(1280, 1000)
        browser.goto(api_stack.api_url + "/")
        browser.wait_for("document.querySelector('#health').dataset.status === 'ok'", 60)
        # the front page: the fleet's history; the report's worst stores, each a link
        browser.wait_for("document.querySelector('#fleet-history').dataset.state === 'ready'", 60)
        assert browser.js("!!document.querySelector('#fleet-history svg path.line[d^=M]')")
        row = f"#reports tbody tr[data-report-id=\"{first_report['id']}\"]"
        browser.wait_for(f"!!document.querySelector('{row} button')", 60)
        browser.js(f"[...document.querySelectorAll('{row} button')]"
                   ".find((b) => b.textContent === 'Chart').click()")
        browser.wait_for("document.querySelectorAll('#worst tbody a.store-link').length === 10", 60)

        # search a store that was down last week
        store = worst[0]["store_id"]
        browser.js(f"document.querySelector('#store-id').value = {json.dumps(store)}")
        browser.js("document.querySelector('#store-search button[type=submit]').click()")
        _open_store(browser, store)
        as_of = browser.js("document.querySelector('#timeline').dataset.asOf")
        timeline = api.get(f"/stores/{store}/timeline", params={"as_of": as_of}).json()
        values = timeline["values"]
        dom = browser.js(WEEK_DOM)

        # one row per local day of the week, all on one scale (pixels per hour)
        assert len(dom["days"]) in (8, 9)
        assert [(d["start"], d["end"]) for d in dom["days"]] == [
            (d["start_utc"], d["end_utc"]) for d in timeline["days"]
        ]
        scales = [d["width"] / _hours(d["start"], d["end"]) for d in dom["days"]]
        px_per_hour = max(scales)
        assert px_per_hour > 10 and max(scales) - min(scales) < 0.01, scales
        # the bands are as wide as the week's values, to a pixel
        assert abs(dom["up"] - values["uptime_last_week"] * px_per_hour) <= 1, (dom, values)
        assert abs(dom["down"] - values["downtime_last_week"] * px_per_hour) <= 1, (dom, values)
        assert values["downtime_last_week"] > 0
        assert dom["used"] >= 1
        assert dom["values"] == values  # the six values beside the week, as the API says
        assert browser.js("!!document.querySelector('#store-history svg path.line[d^=M]')")
        assert timeline["source"] is not None, "the default as-of is the newest partition's"
        links = browser.js("[...document.querySelectorAll('#source a.run, #source a.partition')"
                           "].map((a) => a.href)")
        assert links == [timeline["source"]["dagster_partition_url"],
                         timeline["source"]["dagster_run_url"]]
        browser.screenshot(tmp_path / "store_week.png")  # the test's artefact

        # back to the front page, then a link of the worst stores: the week as of that report,
        # whose numbers are that row's
        browser.js("history.back()")
        browser.wait_for("document.body.dataset.view === 'front'", 30)
        other = worst[1]
        browser.js(f"[...document.querySelectorAll('#worst a.store-link')]"
                   f".find((a) => a.textContent === {json.dumps(other['store_id'])}).click()")
        _open_store(browser, other["store_id"])
        assert browser.js("location.hash").startswith(f"#store={other['store_id']}&as_of=")
        shown = browser.js(WEEK_DOM)["values"]
        assert shown["uptime_last_week"] == other["uptime_last_week"]
        assert shown["downtime_last_week"] == other["downtime_last_week"]

        # a store closed on a date of the week (data/special_hours.csv): its day row is marked
        # with the reason, and the hours list names the date
        with open(ROOT / "data" / "special_hours.csv", newline="") as handle:
            holiday = next(row for row in csv.DictReader(handle) if row["date"] == "2023-01-22"
                           and not row["start_time_local"] and row["reason"])
        store = holiday["store_id"]
        browser.js(f"location.hash = {json.dumps(f'#store={store}')}")
        browser.wait_for(
            f"(s => s.dataset.storeId === {json.dumps(store)} && s.dataset.state === 'ready')"
            "(document.querySelector('#timeline'))", 60,
        )
        day = "#timeline .day[data-date='2023-01-22']"
        assert browser.js(f"document.querySelector(\"{day}\").dataset.special") == (
            f"closed: {holiday['reason']}"
        )
        assert browser.js(f"!!document.querySelector(\"{day} rect.special-date\")")
        assert holiday["reason"] in browser.js(
            f"document.querySelector(\"{day} text.special-label\").textContent"
        )
        listed = browser.js("document.querySelector(\"#store-facts .special-list "
                            "li[data-date='2023-01-22']\").textContent")
        assert listed.startswith("Sun 22 Jan: closed") and holiday["reason"] in listed

        # an unknown store and a malformed id: a message in the page
        for bad, words in (("no-such-store-e2e", "No store"), ("not a store!", "not a store id")):
            browser.js(f"document.querySelector('#store-id').value = {json.dumps(bad)}")
            browser.js("document.querySelector('#store-search button[type=submit]').click()")
            browser.wait_for(
                f"(s => s.dataset.storeId === {json.dumps(bad)} && s.dataset.state === 'error')"
                "(document.querySelector('#timeline'))", 30,
            )
            assert words in browser.js("document.querySelector('#store-message').textContent")
        assert browser.exceptions() == []
    finally:
        browser.close()


@pytest.mark.skipif(not chromium_available(), reason="needs Debian's chromium "
                    "(apt-get install -y chromium chromium-driver)")
def test_page_shows_the_sla_of_the_sample_month_in_headless_chromium(api_stack, api, tmp_path):
    """The SLA view opens on the newest month with data: the fleet's availability as GET /sla
    says it, the histogram, and the stores below target, the lowest first, each a link to its
    week as of the end of its worst incident."""
    sla = api.get("/sla", params={"month": "2023-01"}, headers={"Accept": "application/json"})
    assert sla.status_code == 200, sla.text
    body = sla.json()
    lowest = min((r for r in body["rows"] if r["target_met"] is False),
                 key=lambda r: (r["availability_pct"], r["store_id"]))
    browser = Browser(tmp_path)
    try:
        browser.goto(api_stack.api_url + "/")
        browser.wait_for("document.querySelector('#sla').dataset.state === 'ready'", 120)
        assert browser.js("document.querySelector('#sla').dataset.period") == "2023-01"
        assert browser.js("document.querySelector('#sla-fleet').textContent") == (
            f"{body['summary']['availability_pct']:.2f} %"
        )
        assert browser.js("document.querySelectorAll('#sla-chart svg rect.bar').length") == 20
        link = browser.js("(a => ({ text: a.textContent, hash: a.hash }))"
                          "(document.querySelector('#sla-below a.store-link'))")
        assert link["text"] == lowest["store_id"]
        assert browser.js("document.querySelector('#sla-download').getAttribute('href')") == (
            "/sla?month=2023-01"
        )
        browser.js("document.querySelector('#sla-download').click()")
        target = browser.downloads / "sla-2023-01.csv"
        deadline = time.monotonic() + 60
        while not target.exists() and time.monotonic() < deadline:
            time.sleep(0.2)
        assert target.read_bytes() == api.get("/sla", params={"month": "2023-01"}).content
        browser.js("document.querySelector('#sla-below a.store-link').click()")
        browser.wait_for(
            f"(s => s.dataset.storeId === {json.dumps(lowest['store_id'])} && "
            "s.dataset.state === 'ready')(document.querySelector('#timeline'))", 60,
        )
        as_of = browser.js("document.querySelector('#timeline').dataset.asOf")
        assert datetime.fromisoformat(as_of) == datetime.fromisoformat(
            lowest["worst_incident"]["end"])
        assert browser.exceptions() == []
    finally:
        browser.close()


def test_hostile_files_in_incoming_are_quarantined_and_move_nothing(api_stack, api):
    """The measured hostile files dropped in incoming/: the sensor's ingest run succeeds, their
    hostile lines are quarantined with their reasons and line numbers, and the latest poll and
    the next report's as-of do not move. Their valid rows are sample polls again (duplicates),
    so the other tests sharing this stack see the same data; a report is made after the ingest
    so that the next test still finds the data unchanged since the last report."""
    import os

    import dagster as dg
    import duckdb

    from storemon_pipeline.engine.state import read_latest_poll

    home = api_stack.home
    latest_before = read_latest_poll(home)
    header = b"store_id,status,timestamp_utc\n"
    sample = b"1515989402848510686,active,2023-01-21 18:41:02.866076 UTC\n"  # the first poll
    skewed = b"1515989402848510686,active,2033-01-20 10:00:00 UTC\n"  # a wrong clock
    files = {
        "hostile_skewed.csv": header + sample + skewed,
        "hostile_far.csv": header + b"hostile-far,active,9999-12-31 23:59:59 UTC\n" + sample,
        "hostile_nul.csv": header + b"hostile-nul,act\x00ive,2023-01-21 18:00:00 UTC\n" + sample,
        "hostile_long.csv": header + b"x" * 50_000_000 + b"\n" + sample,
        "hostile_cr.csv": (header + sample).replace(b"\n", b"\r"),
        "hostile_nuls.csv": header + sample + b"\x00" * 100 + b"\n",
    }
    staging = home / "hostile_staging"
    staging.mkdir()
    for name, data in files.items():
        (staging / name).write_bytes(data)
    time.sleep(2.5)  # settled: the sensor takes them all at one tick
    started = time.time()
    for name in files:
        os.replace(staging / name, home / "incoming" / name)

    instance = dg.DagsterInstance.from_config(str(home / "dagster"))
    deadline = time.monotonic() + REPORT_TIMEOUT
    while True:
        runs = [
            r for r in instance.get_run_records(dg.RunsFilter(job_name="ingest_job"))
            if r.create_timestamp.timestamp() > started and r.dagster_run.is_finished
        ]
        if runs:
            break
        assert time.monotonic() < deadline, "the incoming files were never ingested"
        time.sleep(1)
    [run] = runs
    assert run.dagster_run.status == dg.DagsterRunStatus.SUCCESS
    assert run.dagster_run.tags["storemon/files"] == str(len(files))

    with duckdb.connect(str(home / "storemon.duckdb"), read_only=True) as con:
        found = con.execute(
            "SELECT regexp_extract(file, '[^/]*$'), line, reason, length(raw) FROM quarantine "
            "WHERE file LIKE '%/incoming/hostile_%' ORDER BY ALL"
        ).fetchall()
        manifest = con.execute(
            "SELECT sum(rows_loaded), sum(rows_read) FROM ingest_manifest "
            "WHERE file LIKE '%/incoming/hostile_%'"
        ).fetchone()
    assert [row[:3] for row in found] == [
        ("hostile_far.csv", 2, "invalid_timestamp"),
        ("hostile_long.csv", 2, "line_too_long"),
        ("hostile_nul.csv", 2, "control_characters"),
        ("hostile_nuls.csv", 3, "control_characters"),
        ("hostile_skewed.csv", 3, "future_timestamp"),
    ]
    assert max(row[3] for row in found) < 5000
    assert manifest == (0, 11)  # every valid row a duplicate of the sample: nothing new
    assert read_latest_poll(home) == latest_before

    answer = api.post("/trigger_report?fresh=true")
    assert answer.status_code == 202, answer.text
    status = wait_for_report(api, answer.json()["report_id"])
    assert status["status"] == "Complete", status
    assert datetime.fromisoformat(status["as_of"]).replace(tzinfo=None) == latest_before


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

