"""Blocking checks end to end: a Dagster webserver and daemon whose code location corrupts one
row of every report (tests/support/faulty_location.py, nothing in the product), and the API.
A triggered report's run fails on its checks; the API answers Failed with each check's name
and what it found, never serves the CSV, and says so still while Dagster is down."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from support.stack import ROOT, Stack, prepare_home, wait_for_report

FAULTY_WORKSPACE = f"""
load_from:
  - python_module:
      module_name: support.faulty_location
      attribute: defs
      location_name: storemon
      working_directory: {ROOT / "tests"}
"""


@pytest.fixture(scope="module")
def faulty_stack(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("faulty_stack")
    (root / "logs").mkdir()
    prepare_home(root / "home")
    workspace = root / "workspace.yaml"
    workspace.write_text(FAULTY_WORKSPACE)
    stack = Stack(root / "home", root / "logs")
    try:
        stack.start_dagster(workspace)
        stack.api_url = stack.start_api()
        yield stack
    finally:
        stack.stop()


def test_a_report_that_breaks_its_checks_is_failed_with_what_they_found(faulty_stack: Stack):
    with httpx.Client(base_url=faulty_stack.api_url, timeout=60) as api:
        report_id = api.post("/trigger_report").json()["report_id"]
        status = wait_for_report(api, report_id)
        assert status["status"] == "Failed", status
        assert status["dagster_status"] == "FAILURE" and status["trigger"] == "api"
        error = status["error"]
        assert "check values_within_period failed: 1 of " in error, error
        assert "stores have a value outside [0, period]" in error
        assert "check uptime_plus_downtime_is_business_time failed: 1 of " in error
        assert "differs from business time by more than a second" in error
        assert "one_row_per_store_with_polls" not in error  # it passed

        answer = api.get("/get_report", params={"report_id": report_id})
        assert answer.status_code == 200 and answer.json() == {"status": "Failed", "error": error}
        assert api.get(f"/reports/{report_id}/csv").status_code == 409
        reports: Path = faulty_stack.home / "reports"
        assert (reports / f"{report_id}.csv").exists()  # kept for whoever looks into it
        assert not (reports / f"{report_id}.json").exists()
        assert (reports / "withheld" / f"{report_id}.json").exists()

        # Dagster down: the report is still Failed, from the withheld file
        faulty_stack.stop_webserver()
        down = api.get("/get_report", params={"report_id": report_id}).json()
        assert down["status"] == "Failed" and "values_within_period" in down["error"]
