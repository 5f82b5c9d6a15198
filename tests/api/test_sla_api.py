"""SLA periods over the API (GET /sla, GET /stores/{id}/sla, GET /sla/months), in process on
real DuckDB files of the sample data: the CSV is the engine's (what `storemon sla` writes), the
JSON says the same, a saved month answers without the stores' database, errors are Problems."""

from __future__ import annotations

import csv
import io
import shutil
import warnings
from pathlib import Path

import pytest
from support.faults import held_open
from support.processes import free_port

from storemon_api.main import create_app
from storemon_api.settings import ApiSettings
from storemon_pipeline.engine.db import database
from storemon_pipeline.engine.instants import parse_iso
from storemon_pipeline.engine.sla import (
    Period,
    compute_sla,
    month_period,
    save_sla,
    saved_month_path,
    sla_incident_frame,
    sla_summary,
    utc_period,
    week_period,
    write_sla_csv,
)
from storemon_pipeline.settings import Settings

with warnings.catch_warnings():  # Starlette's note about its httpx-based client, not ours
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

JSON = {"Accept": "application/json"}
MONTH, WEEK = "2023-01", "2023-W03"
RANGE = {"from": "2023-01-20T00:00:00Z", "to": "2023-01-22T12:00:00Z"}


def client_for(state: Settings, **settings) -> TestClient:
    api_settings = ApiSettings(**{"dagster_url": f"http://127.0.0.1:{free_port()}", **settings})
    return TestClient(create_app(api_settings, state), raise_server_exceptions=False)


def _copy(sample_state: Path, folder: Path, **settings) -> Settings:
    home = folder / "home"
    shutil.copytree(sample_state, home)
    state = Settings(home=home, **settings)
    state.ensure_dirs()
    return state


@pytest.fixture(scope="module")
def sla_state(sample_state, tmp_path_factory) -> Settings:
    """The sample in one file; no saved month (every period is computed)."""
    return _copy(sample_state, tmp_path_factory.mktemp("sla"))


@pytest.fixture(scope="module")
def client(sla_state) -> TestClient:
    with client_for(sla_state) as client:
        yield client


def engine_csv(state: Settings, period: Period, folder: Path, target: float | None = None,
               store_ids: list[str] | None = None) -> bytes:
    """What `storemon sla` writes for the period."""
    with database(state.duckdb_path, read_only=True) as con:
        written = write_sla_csv(
            con, folder / "engine.csv", period, store_ids,
            target_pct=state.sla_target_pct if target is None else target,
        )
    return written.path.read_bytes()


def _rows(body: bytes) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(body.decode())))


def _as_csv_text(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value:.2f}"
    return str(value)


PERIODS = {
    "month": ({"month": MONTH}, month_period(MONTH), "sla-2023-01.csv"),
    "week": ({"week": WEEK}, week_period(WEEK), "sla-2023-W03.csv"),
    "range": (RANGE, utc_period(parse_iso(RANGE["from"]), parse_iso(RANGE["to"])),
              "sla-20230120T000000-20230122T120000.csv"),
}


@pytest.mark.parametrize("kind", PERIODS)
def test_csv_is_the_engine_csv(client, sla_state, tmp_path, kind):
    params, period, name = PERIODS[kind]
    answer = client.get("/sla", params=params)
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"].startswith("text/csv")
    assert answer.headers["content-disposition"] == f'attachment; filename="{name}"'
    assert answer.content == engine_csv(sla_state, period, tmp_path)
    assert len(_rows(answer.content)) == 1500


def test_some_stores_and_another_target(client, sla_state, tmp_path):
    stores = [row["store_id"] for row in _rows(client.get("/sla", params={"week": WEEK}).content)]
    some = [stores[3], stores[0], "no-such-store"]
    answer = client.get("/sla", params={"week": WEEK, "store": some, "target": 50})
    assert answer.status_code == 200, answer.text
    assert answer.content == engine_csv(sla_state, week_period(WEEK), tmp_path, 50, some)
    assert [row["store_id"] for row in _rows(answer.content)] == sorted(stores[:1] + stores[3:4])


def test_json_says_what_the_csv_says(client, sla_state):
    body = client.get("/sla", params={"month": MONTH}, headers=JSON)
    assert body.status_code == 200, body.text
    assert body.headers["content-type"].startswith("application/json")
    got = body.json()
    csv_rows = _rows(client.get("/sla", params={"month": MONTH}).content)
    assert got["period"] == {"kind": "month", "name": MONTH, "local": True,
                             "start": "2023-01-01T00:00:00", "end": "2023-02-01T00:00:00"}
    assert got["target_pct"] == sla_state.sla_target_pct
    assert got["source"]["kind"] == "computed" and got["source"]["saved_at"] is None
    assert got["source"]["dagster_partition_url"] is None
    assert got["latest_poll"] == got["source"]["latest_poll"]
    assert got["latest_poll"].startswith("2023-01-25T")
    assert got["links"]["csv"] == f"/sla?month={MONTH}"
    assert len(got["rows"]) == len(csv_rows) == 1500
    for row, line in zip(got["rows"], csv_rows, strict=True):
        for column, text in line.items():
            value = row[column]
            if column.startswith("period_"):
                assert parse_iso(value) == parse_iso(text), (column, row)
            else:
                assert _as_csv_text(value) == text, (column, row)

    with database(sla_state.duckdb_path, read_only=True) as con:
        compute_sla(con, [month_period(MONTH)], target_pct=sla_state.sla_target_pct)
        summary = sla_summary(con)
        incidents = sla_incident_frame(con)
    assert got["summary"] == {
        "stores": summary.stores, "stores_below_target": summary.stores_below_target,
        "stores_without_business_time": summary.stores_without_business_time,
        "availability_pct": pytest.approx(summary.availability_pct),
    }
    assert summary.stores_below_target == sum(row["target_met"] is False for row in got["rows"])
    assert sum(b["stores"] for b in got["bins"]) == sum(
        row["availability_pct"] is not None for row in got["rows"])
    assert [b["lower"] for b in got["bins"]] == list(range(0, 100, 5))
    # each store's worst incident is its longest
    longest = incidents.groupby("store_id")["business_minutes"].max()
    for row in got["rows"]:
        worst = row["worst_incident"]
        if row["incidents"] == 0:
            assert worst is None
        else:
            assert worst["business_minutes"] == pytest.approx(longest[row["store_id"]])
            assert f"{worst['business_minutes']:.2f}" == f"{row['longest_incident_minutes']:.2f}"


def test_a_store_is_its_row_with_its_incidents(client, sla_state):
    rows = client.get("/sla", params={"week": WEEK}, headers=JSON).json()["rows"]
    row = max(rows, key=lambda r: r["incidents"])
    store = row["store_id"]
    answer = client.get(f"/stores/{store}/sla", params={"week": WEEK})
    assert answer.status_code == 200, answer.text
    got = answer.json()
    assert got["row"] == row and got["source"]["kind"] == "computed"
    with database(sla_state.duckdb_path, read_only=True) as con:
        compute_sla(con, [week_period(WEEK)], target_pct=sla_state.sla_target_pct)
        frame = sla_incident_frame(con, 0, [store])
    assert len(got["incidents"]) == row["incidents"] == len(frame) > 1
    for incident, expected in zip(got["incidents"], frame.itertuples(), strict=True):
        assert parse_iso(incident["start"]) == expected.incident_start.to_pydatetime()
        assert parse_iso(incident["end"]) == expected.incident_end.to_pydatetime()
        assert incident["business_minutes"] == expected.business_minutes
        assert incident["start"].endswith("Z")

    assert client.get("/stores/9999999/sla", params={"week": WEEK}).status_code == 404
    # a store first polled after the period's end is not reported by it
    assert client.get(f"/stores/{store}/sla", params={"week": "2022-W50"}).status_code == 404
    malformed = client.get("/stores/%20bad/sla", params={"week": WEEK})
    assert malformed.status_code == 422 and "store_id" in malformed.json()["detail"]


@pytest.mark.parametrize(("params", "words"), [
    ({}, "give one period"),
    ({"month": MONTH, "week": WEEK}, "not month and week"),
    ({"month": MONTH, **RANGE}, "not from/to and month"),
    ({"from": RANGE["from"]}, "from and to together"),
    ({"to": RANGE["to"]}, "from and to together"),
    ({"from": RANGE["to"], "to": RANGE["from"]}, "must be after from"),
    ({"from": RANGE["from"], "to": RANGE["from"]}, "must be after from"),
    ({"month": "2023-1"}, "not a month"),
    ({"month": "2023-13"}, "the month must be 01-12"),
    ({"week": "2023-03"}, "not an ISO week"),
    ({"week": "2023-W54"}, "has no week 54"),
    ({"month": MONTH, "target": 100.5}, "within 0-100"),
    ({"month": MONTH, "target": -1}, "within 0-100"),
    ({"month": MONTH, "target": "nan"}, "within 0-100"),
    ({"month": MONTH, "store": "not a store!"}, "store_id must be"),
])
def test_what_cannot_be_asked_is_a_422_problem(client, params, words):
    for path in ("/sla", "/stores/1006003012278214453/sla"):
        if path != "/sla" and "store" in params:
            continue
        answer = client.get(path, params=params)
        assert answer.status_code == 422, (path, answer.text)
        assert list(answer.json()) == ["detail"] and words in answer.json()["detail"], path


def test_a_period_longer_than_the_retention_is_a_422(sample_state, tmp_path):
    state = Settings(home=sample_state, retention_days=7)
    with client_for(state) as client:
        answer = client.get("/sla", params={"month": MONTH})
        assert answer.status_code == 422
        assert "longer than the 7 days" in answer.json()["detail"]
        longer = {"from": "2023-01-17T00:00:00Z", "to": "2023-01-24T00:00:01Z"}
        assert client.get("/sla", params=longer).status_code == 422
        assert client.get("/sla", params={"week": WEEK}).status_code == 200  # 7 days: kept


def test_a_saved_month_is_answered_from_its_file(sample_state, tmp_path):
    """The month saved (as `monthly_sla` saves it), then the stores' database moved away: the
    month still answers, from the file, for any target; other periods need the database."""
    state = _copy(sample_state, tmp_path)
    state.sla_dir.mkdir(parents=True, exist_ok=True)
    period = month_period(MONTH)
    expected_csv = engine_csv(state, period, tmp_path)
    with database(state.duckdb_path, read_only=True) as con:
        run = compute_sla(con, [period], target_pct=99.0)
        save_sla(con, saved_month_path(state.sla_dir, MONTH), run)
        compute_sla(con, [period], target_pct=50.0)
        at_50 = sla_summary(con)
        store = con.execute(
            "SELECT store_id FROM sla_results WHERE incidents > 0 ORDER BY store_id LIMIT 1"
        ).fetchone()[0]
        incidents = sla_incident_frame(con, 0, [store])
    assert at_50.stores_below_target > 0
    state.duckdb_path.rename(state.state_dir / "elsewhere.duckdb")

    with client_for(state) as client:
        answer = client.get("/sla", params={"month": MONTH})
        assert answer.status_code == 200, answer.text
        assert answer.content == expected_csv
        got = client.get("/sla", params={"month": MONTH}, headers=JSON).json()
        assert got["source"]["kind"] == "partition"
        assert got["source"]["saved_at"] and got["source"]["latest_poll"] == got["latest_poll"]
        assert got["source"]["dagster_partition_url"].endswith(
            f"/assets/monthly_sla?view=partitions&partition={MONTH}")
        at_99 = got["summary"]["stores_below_target"]
        other = client.get("/sla", params={"month": MONTH, "target": 50}, headers=JSON).json()
        assert other["summary"]["stores_below_target"] == at_50.stores_below_target < at_99
        assert sum(r["target_met"] is False for r in other["rows"]) == at_50.stores_below_target
        assert other["target_pct"] == 50.0

        one = client.get(f"/stores/{store}/sla", params={"month": MONTH}).json()
        assert one["source"]["kind"] == "partition"
        assert [i["business_minutes"] for i in one["incidents"]] == list(
            incidents["business_minutes"])
        subset = client.get("/sla", params={"month": MONTH, "store": [store]}, headers=JSON)
        assert [r["store_id"] for r in subset.json()["rows"]] == [store]
        assert subset.json()["summary"]["stores"] == 1
        assert client.get("/stores/9999999/sla", params={"month": MONTH}).status_code == 404

        # a week is computed: without the database there is nothing to compute it on
        assert client.get("/sla", params={"week": WEEK}).status_code == 404
        months = client.get("/sla/months").json()
        assert months["months"] == [{"month": MONTH, "saved": True, "has_polls": False}]


def test_months_list_what_the_polls_span(client):
    months = client.get("/sla/months")
    assert months.status_code == 200, months.text
    assert months.json()["months"] == [{"month": MONTH, "saved": False, "has_polls": True}]
    assert months.json()["latest_poll"].startswith("2023-01-25T")


def test_503_while_a_run_holds_the_store_database(sample_state, tmp_path, monkeypatch):
    """Another process writes the DuckDB file (as a run does): a computed period waits a
    moment, then says so with a 503; a saved month still answers, from its file."""
    monkeypatch.setattr("storemon_api.sla.READ_WAIT_SECONDS", 1.0)
    state = _copy(sample_state, tmp_path)
    state.sla_dir.mkdir(parents=True, exist_ok=True)
    with database(state.duckdb_path, read_only=True) as con:
        save_sla(con, saved_month_path(state.sla_dir, MONTH),
                 compute_sla(con, [month_period(MONTH)], target_pct=99.0))
    with held_open(state.duckdb_path), client_for(state) as client:
        for path in ("/sla", "/stores/1006003012278214453/sla"):
            busy = client.get(path, params={"week": WEEK})
            assert busy.status_code == 503, busy.text
            assert "busy" in busy.json()["detail"] and busy.headers["retry-after"]
        assert client.get("/sla", params={"month": MONTH}).status_code == 200
        assert client.get("/sla/months").status_code == 200
    with client_for(state) as client:
        assert client.get("/sla", params={"week": WEEK}).status_code == 200


def test_token_guards_the_sla_endpoints(sla_state):
    with client_for(sla_state, api_token="s3cret") as client:
        for path in ("/sla?week=2023-W03", "/sla/months", "/stores/1/sla?week=2023-W03"):
            assert client.get(path).status_code == 401, path
        allowed = client.get("/sla/months", headers={"Authorization": "Bearer s3cret"})
        assert allowed.status_code == 200
        schema = client.get("/openapi.json").json()
        assert {"/sla", "/sla/months", "/stores/{store_id}/sla"} <= set(schema["paths"])
        assert "text/csv" in schema["paths"]["/sla"]["get"]["responses"]["200"]["content"]
        for model in ("SlaResponse", "StoreSlaResponse", "SlaMonthsResponse"):
            assert schema["components"]["schemas"][model].get("examples"), model
