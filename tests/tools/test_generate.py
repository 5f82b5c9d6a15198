"""The data generator: realistic, messy in the ways real feeds are, and reproducible."""

from __future__ import annotations

import gzip
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from storemon_pipeline.settings import SAMPLE_DATA_DIR
from storemon_pipeline.tools import generate
from storemon_pipeline.tools.bench import dataset_params, phase_floor
from storemon_pipeline.tools.bench_chart import redraw

STORE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$")
UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")


def read_text_csv(path: Path | str) -> pd.DataFrame:
    """A CSV with every cell as text, exactly as written (no trimming, no type guessing)."""
    return pd.read_csv(path, dtype=str, keep_default_na=False)


def polls_of(info: dict) -> pd.DataFrame:
    return pd.concat([read_text_csv(path) for path in info["poll_files"]], ignore_index=True)


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """300 stores over 2 days in 2 poll files."""
    return generate.generate_dataset(
        tmp_path_factory.mktemp("small"), stores=300, days=2, seed=7, poll_files=2
    )


def test_same_seed_same_bytes_other_seed_other_data(small: dict, tmp_path: Path) -> None:
    again = generate.generate_dataset(tmp_path / "a", stores=300, days=2, seed=7, poll_files=2)
    other = generate.generate_dataset(tmp_path / "b", stores=300, days=2, seed=8, poll_files=2)
    for key in ("menu_hours", "timezones", "special_hours"):
        assert Path(small[key]).read_bytes() == Path(again[key]).read_bytes()
    for mine, theirs in zip(small["poll_files"], again["poll_files"], strict=True):
        assert Path(mine).read_bytes() == Path(theirs).read_bytes()
    assert Path(small["poll_files"][0]).read_bytes() != Path(other["poll_files"][0]).read_bytes()


def test_headers(small: dict) -> None:
    def header(path: str) -> str:
        return Path(path).read_text().splitlines()[0]

    assert header(small["menu_hours"]) == "store_id,day,start_time_local,end_time_local"
    assert header(small["timezones"]) == "store_id,timezone_str"
    assert [Path(p).name for p in small["poll_files"]] == [
        "store_status_000.csv",
        "store_status_001.csv",
    ]
    for path in small["poll_files"]:
        assert header(path) == "store_id,status,timestamp_utc"


def test_special_hours_load_for_a_tenth_of_the_stores(small: dict, tmp_path: Path) -> None:
    """special_hours.csv ingests without a rejected row, for 10 % of the stores (some without
    weekly hours), on local dates of the polls' span, with every kind of special date."""
    from storemon_pipeline.engine.db import connect
    from storemon_pipeline.engine.ingest import ingest_paths

    con = connect(tmp_path / "storemon.duckdb")
    try:
        results = ingest_paths(con, [small["menu_hours"], small["special_hours"]])
        special = next(r for r in results if r.feed == "special_hours")
        assert special.status == "loaded" and special.rows_rejected == 0
        assert special.rows_loaded == small["special_rows"]
        rows = con.execute("SELECT * FROM special_hours").df()
        weekly = set(con.execute("SELECT DISTINCT store_id FROM business_hours").df()["store_id"])
    finally:
        con.close()
    stores = set(rows["store_id"])
    assert len(stores) == small["special_stores"] == 30  # 10 % of 300
    assert stores <= set(polls_of(small)["store_id"]) and stores - weekly
    assert set(rows["local_date"].astype(str)) <= {"2023-01-18", "2023-01-19"}
    closed = rows["start_sec"].isna() & rows["end_sec"].isna()
    assert closed.any() and not (rows["start_sec"].isna() ^ rows["end_sec"].isna()).any()
    assert (rows["end_sec"] < rows["start_sec"]).any(), "an overnight date"
    assert (rows["end_sec"] == 86400).any(), "24:00 as an end"
    assert (rows.groupby(["store_id", "local_date"]).size() == 2).any(), "a split date"
    assert rows["reason"].notna().any() and rows["reason"].isna().any()


def test_roughly_hourly_polls_in_the_period(small: dict) -> None:
    polls = polls_of(small)
    assert len(polls) == small["polls"]
    ts = pd.to_datetime(polls["timestamp_utc"].str.removesuffix(" UTC"), utc=True, format="ISO8601")
    assert ts.min() >= pd.Timestamp("2023-01-18", tz="UTC")
    assert ts.max() < pd.Timestamp("2023-01-20", tz="UTC")
    per_store_hour = polls.groupby([polls["store_id"], ts.dt.floor("h")]).size()
    assert per_store_hour.max() == 1
    assert 0.55 < len(polls) / (300 * 48) < 0.85
    assert polls["store_id"].nunique() == 300


def test_poll_files_are_consecutive_time_slices(small: dict) -> None:
    first, second = (
        pd.to_datetime(
            read_text_csv(path)["timestamp_utc"].str.removesuffix(" UTC"),
            utc=True,
            format="ISO8601",
        )
        for path in small["poll_files"]
    )
    assert first.max() < second.min()


def test_mixed_timestamp_forms_and_status_spellings(small: dict) -> None:
    stamps = polls_of(small)["timestamp_utc"]
    forms = {
        "fraction UTC": r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{1,6} UTC$",
        "seconds UTC": r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC$",
        "ISO Z": r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,6})?Z$",
        "+00:00": r"^\d{4}-\d\d-\d\d[ T]\d\d:\d\d:\d\d(\.\d{1,6})?\+00:00$",
    }
    counts = {name: int(stamps.str.match(pattern).sum()) for name, pattern in forms.items()}
    assert sum(counts.values()) == len(stamps), "every stamp has one of the known forms"
    assert counts["fraction UTC"] > 0.8 * len(stamps)
    assert all(n > 0 for n in counts.values()), counts

    statuses = polls_of(small)["status"]
    assert set(statuses.str.strip().str.lower()) == {"active", "inactive"}
    assert statuses.isin(["active", "inactive"]).mean() > 0.98
    assert not statuses.isin(["active", "inactive"]).all(), "some odd case or whitespace"
    inactive = (statuses.str.strip().str.lower() == "inactive").mean()
    assert 0.02 < inactive < 0.15


def test_rows_are_shuffled(small: dict) -> None:
    polls = read_text_csv(small["poll_files"][0])
    ts = pd.to_datetime(polls["timestamp_utc"].str.removesuffix(" UTC"), utc=True, format="ISO8601")
    assert not ts.is_monotonic_increasing
    # consecutive rows seldom belong to the same store
    assert (polls["store_id"] == polls["store_id"].shift()).mean() < 0.05


def test_hours_and_zones_come_from_the_real_data(small: dict) -> None:
    polls, hours = polls_of(small), read_text_csv(small["menu_hours"])
    zones = read_text_csv(small["timezones"])
    stores = set(polls["store_id"])
    assert set(hours["store_id"]) <= stores and set(zones["store_id"]) <= stores
    real_hours = read_text_csv(SAMPLE_DATA_DIR / "menu_hours.csv")
    real_rows = set(real_hours[["day", "start_time_local", "end_time_local"]].itertuples(False))
    assert set(hours[["day", "start_time_local", "end_time_local"]].itertuples(False)) <= real_rows
    real_zones = set(read_text_csv(SAMPLE_DATA_DIR / "timezones.csv")["timezone_str"])
    assert set(zones["timezone_str"]) <= real_zones
    without_hours = 1 - hours["store_id"].nunique() / len(stores)
    assert 0.1 < without_hours < 0.35
    assert len(zones) < len(stores), "some stores have no time zone"
    assert small["stores_without_timezone"] == len(stores) - len(zones)


def test_ids_are_text_and_some_are_huge_or_uuids(small: dict) -> None:
    ids = read_text_csv(small["timezones"])["store_id"]
    assert ids.map(lambda s: bool(STORE_ID.match(s))).all()
    fresh = generate._new_ids(20_000, np.random.default_rng(1), taken=set())
    assert len(set(fresh)) == len(fresh)
    is_uuid = np.array([bool(UUID.match(s)) for s in fresh])
    numbers = [int(s) for s in fresh[~is_uuid]]
    assert 0.005 < is_uuid.mean() < 0.02
    assert 0.05 < np.mean([n >= 2**63 for n in numbers]) < 0.11
    assert np.mean([len(str(n)) == 19 for n in numbers]) > 0.85


def test_real_ids_subset_keeps_rare_cases(tmp_path: Path) -> None:
    info = generate.generate_dataset(tmp_path, stores=200, days=1, seed=3, real_ids=True)
    stores = set(polls_of(info)["store_id"])
    real_zones = read_text_csv(SAMPLE_DATA_DIR / "timezones.csv")
    real_hours = read_text_csv(SAMPLE_DATA_DIR / "menu_hours.csv")
    assert stores <= set(real_zones["store_id"]) | set(real_hours["store_id"])
    ours = read_text_csv(info["menu_hours"])
    theirs = real_hours[real_hours["store_id"].isin(stores)]
    assert len(ours) == len(theirs)
    assert info["stores_without_timezone"] > 0
    zones = real_zones[real_zones["store_id"].isin(stores)]["timezone_str"]
    assert zones.nunique() >= 5
    with pytest.raises(ValueError):
        generate.generate_dataset(tmp_path / "too-many", stores=10**6, days=1, real_ids=True)


def test_sample_in_data_folder_is_what_the_generator_makes(tmp_path: Path) -> None:
    """``python -m storemon_pipeline.tools.generate --sample`` rebuilds the committed sample."""
    shipped = SAMPLE_DATA_DIR / generate.SAMPLE_POLLS
    rebuilt = generate.build_sample(tmp_path)
    assert gzip.decompress(shipped.read_bytes()) == gzip.decompress(
        Path(rebuilt["poll_files"][0]).read_bytes()
    )
    bad = SAMPLE_DATA_DIR / generate.SAMPLE_BAD_ROWS
    assert bad.read_text() == Path(rebuilt["bad_rows"]).read_text()
    assert bad.read_text().startswith("store_id,status,timestamp_utc\n")
    assert rebuilt["stores"] == 1500 and shipped.stat().st_size < 5_000_000


def test_floor_phase_reads_every_form(small: dict) -> None:
    result = phase_floor(*small["poll_files"])
    assert result["rows"] == small["polls"] and result["stores"] == 300
    assert result["unparsed"] == 0  # every timestamp form the generator writes


def test_bench_scales() -> None:
    """One poll file at 1x, daily files above (the 30x and 100x sets are made a file at a
    time)."""
    assert dataset_params(1)["stores"] == 14_000 and dataset_params(1)["poll_files"] == 1
    assert dataset_params(10)["stores"] == 140_000 and dataset_params(10)["poll_files"] == 8
    assert dataset_params(100)["stores"] == 1_400_000 and dataset_params(100)["poll_files"] == 8


def test_bench_runs_every_phase_and_compares_history(tmp_path: Path) -> None:
    """The benchmark command end to end on a tiny scale: every phase runs in its own process
    and reports its figures; the history run compares itself with the 8-day run. (Not a timing
    test: the bars' verdicts depend on the machine, the figures go to the README.)"""
    from storemon_pipeline.tools.bench import run_bench

    lines: list[str] = []
    short = run_bench(scale=0.02, cache_dir=tmp_path, out=lines.append)
    phases = {r["phase"]: r for r in short if r["kind"] == "phase"}
    assert set(phases) == {
        "floor", "ingest", "windows", "report", "explain", "load", "week", "late_fleet",
        "late_100", "stray", "special", "ingest_hour", "hour_report",
    }
    assert all(r["seconds"] is not None and r["peak_rss_mb"] > 0 for r in phases.values())
    # the live feed's next hour: loaded on top of the week (and its late files), then reported
    assert 0 < phases["ingest_hour"]["rows"] < phases["ingest"]["rows"] / 100
    assert phases["hour_report"]["rows"] >= phases["report"]["rows"]
    assert phases["week"]["rows"] == 168 * phases["report"]["rows"]
    # the fleet's late file rewrites each store's rows of the day of partitions after it (its own
    # hour's partition and the 24 after it); 100 stores' file, at most 100 stores' rows of them
    assert phases["late_fleet"]["rows"] == 25 * phases["report"]["rows"]
    assert 0 < phases["late_100"]["rows"] <= 25 * 100
    assert phases["explain"]["rows"] == 20  # stores explained
    assert 0 < phases["explain"]["held_seconds"] <= phases["explain"]["held_slowest_seconds"]
    # the API served on loopback: timelines to one client and to 16, then the report's CSV
    load = phases["load"]
    for run, clients in (("single", 1), ("timelines", 16), ("csv", 16)):
        assert load[run]["clients"] == clients and load[run]["ok"] > 0, run
        assert load[run]["errors"] == 0, run
        assert 0 < load[run]["median_s"] <= load[run]["p99_s"] <= load[run]["max_s"], run
    assert load["timelines_per_s"] == load["timelines"]["per_second"] > 0
    assert load["server_peak_rss_mb"] > 0
    # the special hours are in effect: loaded (the ingest phase left them out) and changing rows
    special = phases["special"]
    assert special["special_rows"] > 0 and special["stores_changed"] > 0
    assert special["rows"] == phases["report"]["rows"] and special["baseline_seconds"] > 0
    assert {r["bar"] for r in short if r["kind"] == "bar"} >= {
        "ingest", "report", "ingest / floor", "report / floor", "week of hourly reports / report",
        "report after stray polls / report", "peak memory of a phase", "one store's timeline",
        "history after the fleet's late file / report", "history after 100 stores' late file",
        "report with special hours / without", "one store's timeline, file held open",
        "timelines/s with 16 clients", "p99 of a timeline, 16 clients",
        "ingest of one more hour", "report after one more hour",
    }
    assert any(line.startswith("bar: timelines/s with 16 clients") and " >= 100 " in line
               for line in lines)
    redraw(tmp_path, lines.append)  # what `storemon bench` does after each run
    try:  # the chart of the 8-day runs, drawn when matplotlib is there
        import matplotlib  # noqa: F401
    except ImportError:
        pass
    else:
        assert (tmp_path / "bench.png").is_file()
        assert any(line.startswith("chart of floor, ingest") for line in lines)
    long = run_bench(scale=0.02, cache_dir=tmp_path, history_days=12, out=lines.append)
    long_phases = {r["phase"]: r for r in long if r["kind"] == "phase"}
    assert set(long_phases) == {
        "ingest", "settle", "first_report", "ingest_hour", "settle_hour", "report", "sla",
    }
    assert all(r["seconds"] is not None for r in long_phases.values())
    # every store's days from the 1st, once; one more hour settles few or none
    assert long_phases["settle"]["rows"] >= 10 * long_phases["report"]["rows"]
    assert long_phases["settle_hour"]["rows"] < long_phases["report"]["rows"]
    # the month's SLA of every store the report reports (the history begins on the 1st)
    assert long_phases["sla"]["rows"] == long_phases["report"]["rows"]
    bars = {r["bar"] for r in long if r["kind"] == "bar"}
    assert {
        "report time / 8-day report", "ingest of one more hour", "month's SLA / report"
    } <= bars
    assert any(line.startswith("bar: report time / 8-day report") for line in lines)


def test_shard_bench_runs_and_checks_the_csvs(tmp_path: Path) -> None:
    """`storemon bench --shards` end to end on a tiny scale: the one-file baseline and the three
    sharded runs on warm worker processes; every sharded CSV is the one-file CSV."""
    from storemon_pipeline.tools.bench_shards import run_shard_bench

    lines: list[str] = []
    bars = run_shard_bench(3, 2, scale=0.02, cache_dir=tmp_path, out=lines.append)
    by_name = {bar["bar"]: bar for bar in bars}
    assert by_name["sharded CSVs not byte-identical"]["value"] == 0
    assert all(bar["value"] is not None for bar in bars)
    assert {"pinned report: 2 workers / 1", "peak memory of a step"} <= set(by_name)
    assert any(line.startswith("3 shards, 2 workers, 1 thread") for line in lines)
