"""The API holds the stores' DuckDB files open between requests (engine/readers.py): a real
uvicorn serving timelines to concurrent clients lets a real writer process in (the ingest
command, which would not wait for another writer) and then serves what it wrote; and with
shards every store answer is the one-file answer."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
import warnings
from pathlib import Path

import httpx
import pytest

from storemon_api.main import create_app
from storemon_api.settings import ApiSettings
from storemon_pipeline.engine.db import database
from storemon_pipeline.engine.ingest import data_version
from storemon_pipeline.engine.report import latest_poll
from storemon_pipeline.engine.shards import reshard
from storemon_pipeline.engine.state import write_latest_poll
from storemon_pipeline.settings import Settings
from storemon_pipeline.tools.load import free_port, serve_api

with warnings.catch_warnings():  # Starlette's note about its httpx-based client, not ours
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

CLIENTS = 4
NEW_STORE = "new-store-0001"
WEEK = "2023-W03"


@pytest.fixture
def home(sample_state: Path, tmp_path: Path) -> Path:
    """The sample in one file, with latest_poll.json as an ingest leaves it."""
    home = tmp_path / "home"
    shutil.copytree(sample_state, home)
    with database(home / "storemon.duckdb", read_only=True) as con:
        write_latest_poll(home, latest_poll(con), data_version(con))
        stores = [row[0] for row in con.execute(
            "SELECT store_id FROM stores ORDER BY store_id LIMIT 50").fetchall()]
    (home / "stores.txt").write_text("\n".join(stores))
    return home


def test_a_writer_gets_in_while_timelines_are_served(home: Path, tmp_path: Path):
    """Clients keep asking for timelines while `storemon ingest --wait 0` loads a file: the
    ingest is let in (it would fail at once if an idle reader held the file: the API lets go
    of it between two batches), every answer meanwhile is a timeline or the documented 503,
    and afterwards the API serves the new store it loaded."""
    stores = (home / "stores.txt").read_text().split()
    new_polls = tmp_path / "new_polls.csv"
    new_polls.write_text(
        "store_id,status,timestamp_utc\n"
        f"{NEW_STORE},active,2023-01-25 17:00:00 UTC\n"
        f"{NEW_STORE},inactive,2023-01-25 18:00:00 UTC\n"
    )
    statuses: list[int] = []
    stop = threading.Event()
    with serve_api(home, tmp_path / "api.log") as server:

        def ask() -> None:
            with httpx.Client(base_url=server.url, timeout=60) as client:
                k = 0
                while not stop.is_set():
                    store = stores[k % len(stores)]
                    statuses.append(client.get(f"/stores/{store}/timeline").status_code)
                    k += 1

        with httpx.Client(base_url=server.url, timeout=60) as client:
            assert client.get(f"/stores/{NEW_STORE}/timeline").status_code == 404
        threads = [threading.Thread(target=ask) for _ in range(CLIENTS)]
        for thread in threads:
            thread.start()
        try:
            while len(statuses) < 2 * CLIENTS:  # the clients are being served
                threading.Event().wait(0.05)
            ingest = subprocess.run(
                [str(Path(sys.executable).parent / "storemon"), "ingest", "--wait", "0",
                 str(new_polls)],
                env=_env(home), capture_output=True, text=True, timeout=300,
            )
            served_during = len(statuses)
            while len(statuses) < served_during + 2 * CLIENTS:  # and served after it
                threading.Event().wait(0.05)
        finally:
            stop.set()
            for thread in threads:
                thread.join(120)
        assert ingest.returncode == 0, ingest.stdout + ingest.stderr
        assert "1 file(s)" in ingest.stdout
        assert set(statuses) <= {200, 503} and statuses.count(200) > 0
        with httpx.Client(base_url=server.url, timeout=60) as client:
            new = client.get(f"/stores/{NEW_STORE}/timeline")
            assert new.status_code == 200, new.text
            assert [p["status"] for p in new.json()["polls"]] == ["active", "inactive"]


def _env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("STOREMON_")}
    return {**env, "STOREMON_HOME": str(home)}


def test_shards_answer_as_the_one_file(home: Path, tmp_path: Path):
    """A store's timeline, SLA and alerts, and the fleet's computed SLA and months, from three
    shards held open by the readers: the one file's answers."""
    stores = (home / "stores.txt").read_text().split()[:5]
    sharded = tmp_path / "sharded"
    shutil.copytree(home, sharded)
    reshard(sharded, 3)
    paths = [f"/stores/{store}/timeline" for store in stores]
    paths += [f"/stores/{store}/sla?week={WEEK}" for store in stores]
    paths += [f"/stores/{store}/alerts" for store in stores]
    paths += [f"/sla?week={WEEK}", "/sla/months"]

    def answers(settings: Settings) -> dict[str, object]:
        api = ApiSettings(dagster_url=f"http://127.0.0.1:{free_port()}")
        with TestClient(create_app(api, settings), raise_server_exceptions=False) as client:
            found = {}
            for path in paths:
                response = client.get(path, headers={"accept": "application/json"})
                assert response.status_code in (200, 404), (path, response.text)
                body = response.json()
                if path.endswith("/alerts"):  # as of the latest poll of the store's own file
                    body.pop("as_of")
                found[path] = (response.status_code, body)
            return found

    one = answers(Settings(home=home))
    three = answers(Settings(home=sharded, shards=3))
    assert three == one
    assert sum(status == 200 for status, _ in one.values()) >= 2 * len(stores) + 2
