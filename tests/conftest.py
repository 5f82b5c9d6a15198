"""Shared pytest fixtures. Keep each group of fixtures under its own heading."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import settings

# --- hypothesis profiles -------------------------------------------------------------------
# In CI the property tests draw the same examples every run, so a landing never depends on
# luck; anywhere else each run explores new ones (STOREMON_ORACLE_SCALE=10 for a soak run).
settings.register_profile("ci", derandomize=True, print_blob=True)
if os.environ.get("CI"):
    settings.load_profile("ci")

# --- oracle harness (tests/support/oracle.py; tests/engine/) ------------------------------
# `run_engine(stores, as_of, folder, ...)` feeds oracle.StoreCase stores to the engine the way
# a user would (CSV files -> DuckDB file -> report) and returns report_frame's DataFrame (a
# list of them when as_of is a list: then the reports are also computed in one batch, which
# must give the same rows). `replaced_hours` ({store_id: rows}) is an earlier business-hours
# snapshot, ingested first and replaced by the stores' own hours.
# Session-scoped so that hypothesis tests may use it; pass a fresh folder each call.


@pytest.fixture(scope="session")
def run_engine():
    import pandas as pd
    from support.oracle import write_feeds
    from support.windows import SPAN, windows_built

    from storemon_pipeline.engine.db import connect
    from storemon_pipeline.engine.ingest import ingest_paths
    from storemon_pipeline.engine.report import (
        compute_reports,
        report_frame,
        result_frame,
        write_report_csv,
    )

    def run(stores, as_of, folder, *, poll_files=1, seed=0, csv_path=None, store_ids=None,
            file_order=("polls", "hours", "special", "timezones"), replaced_hours=None):
        paths = write_feeds(stores, folder, poll_files=poll_files, seed=seed)
        if replaced_hours:
            earlier = folder / "menu_hours_earlier.csv"
            earlier.write_text("store_id,dayOfWeek,start_time_local,end_time_local\n" + "".join(
                f"{store_id},{day},{start},{end}\n"
                for store_id, rows in replaced_hours.items() for day, start, end in rows))
        con = connect(folder / "storemon.duckdb")
        try:
            ordered = ([earlier] if replaced_hours else []) + [
                p for feed in file_order for p in paths[feed]]
            results = ingest_paths(con, ordered)
            # "skipped" = the same content already loaded (e.g. two header-only poll files)
            refused = [r.summary() for r in results if r.status not in ("loaded", "skipped")]
            assert not refused, refused
            if csv_path is not None:
                write_report_csv(con, csv_path, as_of=as_of, store_ids=store_ids)
            if not isinstance(as_of, list):
                frame = report_frame(con, as_of=as_of, store_ids=store_ids)
                if con.execute(SPAN).fetchall():
                    # the windows the report may have read from the table: the same rows as
                    # from windows built for it
                    with windows_built(con, store_ids) as named:
                        pd.testing.assert_frame_equal(
                            report_frame(con, as_of=as_of, store_ids=named), frame)
                return frame
            singles = [report_frame(con, as_of=a, store_ids=store_ids) for a in as_of]
            compute_reports(con, as_of, store_ids=store_ids)
            for instant, single in zip(as_of, singles, strict=True):
                pd.testing.assert_frame_equal(result_frame(con, instant), single)
            return singles
        finally:
            con.close()

    return run


# --- REST API end to end (tests/e2e/; helpers in tests/support/) --------------------------
# `api_stack`: a temporary STOREMON_HOME loaded with data/ (`storemon ingest`), a Dagster
# webserver and daemon, and the API under uvicorn, each on a free 127.0.0.1 port. Module-scoped
# (starting Dagster takes seconds); every process is stopped, with its process group and
# descendants, when the module ends, whatever happened.


@pytest.fixture(scope="module")
def api_stack(tmp_path_factory):
    from support.stack import Stack, prepare_home

    root = tmp_path_factory.mktemp("api_stack")
    logs = root / "logs"
    logs.mkdir()
    prepare_home(root / "home")
    stack = Stack(root / "home", logs)
    try:
        stack.start_dagster()
        stack.api_url = stack.start_api()
        yield stack
    finally:
        stack.stop()


# --- the sample data in one file (tests of shards compare with it) ------------------------


@pytest.fixture(scope="session")
def sample_state(tmp_path_factory) -> Path:
    """A state folder holding the sample data in one DuckDB file, and its report CSV."""
    from storemon_pipeline.engine.db import database
    from storemon_pipeline.engine.ingest import ingest_paths
    from storemon_pipeline.engine.report import write_report_csv
    from storemon_pipeline.settings import SAMPLE_DATA_DIR

    home = tmp_path_factory.mktemp("sample-one-file")
    with database(home / "storemon.duckdb") as con:
        ingest_paths(con, [SAMPLE_DATA_DIR])
        write_report_csv(con, home.parent / f"{home.name}.csv")
    return home


@pytest.fixture(scope="session")
def sample_report_csv(sample_state: Path) -> bytes:
    """`storemon report` of the sample data in one file."""
    return (sample_state.parent / f"{sample_state.name}.csv").read_bytes()
