"""The invariant checks recompute business time with the special dates (docs/semantics.md §4,
§2.16): a report made with a store's special dates passes them, and the same stored report
fails them once the special dates it was made with are gone."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

from storemon_pipeline.engine.checks import business_time_gaps
from storemon_pipeline.engine.db import connect
from storemon_pipeline.engine.history import attach_history, partition_as_of, update_history
from storemon_pipeline.engine.ingest import ingest_paths
from storemon_pipeline.engine.report import latest_poll

START = datetime(2023, 12, 20)
SPECIAL_HEADER = "store_id,date,start_time_local,end_time_local\n"


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_business_time_check_counts_the_special_dates(tmp_path):
    history = tmp_path / "history.duckdb"
    con = connect(tmp_path / "storemon.duckdb")
    try:
        polls = "".join(
            f"{store},active,{START + timedelta(hours=h)} UTC\n"
            for store in ("closed-on-xmas", "plain") for h in range(6 * 24)
        )
        ingest_paths(con, [
            _write(tmp_path / "polls.csv", "store_id,status,timestamp_utc\n" + polls),
            _write(tmp_path / "hours.csv", "store_id,dayOfWeek,start_time_local,end_time_local\n"
                   + "".join(f"{s},{d},09:00,17:00\n" for s in ("closed-on-xmas", "plain")
                             for d in range(7))),
            _write(tmp_path / "special.csv", SPECIAL_HEADER
                   + "closed-on-xmas,2023-12-24,,\nclosed-on-xmas,2023-12-25,10:00,12:00\n"),
        ])
        latest = latest_poll(con)
        hours = [START + timedelta(days=5, hours=h) for h in range(0, 24, 6)]
        update_history(con, history, {h: partition_as_of(h, latest) for h in hours})
        attach_history(con, history, read_only=True)
        assert all(f.checked == 2 and f.failing == 0
                   for f in business_time_gaps(con, hours, 1.0).values())
        con.execute("DETACH history")
        # the special dates go; the stored rows, made with them, no longer add up
        ingest_paths(con, [_write(tmp_path / "special_none.csv", SPECIAL_HEADER)])
        attach_history(con, history, read_only=True)
        findings = business_time_gaps(con, hours, 1.0)
        assert all(f.failing == 1 for f in findings.values())
        assert {tuple(f.sample["store_id"]) for f in findings.values()} == {("closed-on-xmas",)}
        # as of Dec 24 19:00 local the week lacks Christmas Eve's 8 h; as of Dec 25 13:00
        # local, also Christmas morning's 09:00-13:00 less its special 10:00-12:00: 10 h
        assert findings[hours[0]].worst == 8 * 3600
        assert findings[hours[-1]].worst == 10 * 3600
    finally:
        con.close()
