"""Synthetic feeds at any scale, shaped like the real 2023 data set.

Business hours and time zones are the real ones (``data/menu_hours.csv``, ``data/timezones.csv``),
replicated under new store ids when more stores are wanted; polls are simulated: about one per
store per hour, the status following a per-store two-state Markov chain (mostly active, outages
lasting a few hours); special hours (holidays, short, split and overnight days) are drawn for
10 % of the stores on dates of the polls' span. Randomness comes from numpy and DuckDB only
formats and writes, so a data set depends only on its arguments, and 18 million polls fit in a
few hundred MB of memory because polls are made and written one output file at a time.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa

from storemon_pipeline.settings import SAMPLE_DATA_DIR

POLLS_HEADER = "store_id,status,timestamp_utc"
HOURS_HEADER = "store_id,day,start_time_local,end_time_local"
SPECIAL_HEADER = "store_id,date,start_time_local,end_time_local,reason"

# Share of stores that poll but appear in neither the hours nor the time-zone file
# (about 3 % of the stores of the real poll file).
POLL_ONLY_SHARE = 0.03
UUID_SHARE = 0.01
# Zones with fewer stores than this, and stores without a zone, are over-sampled in small data
# sets so that even a few hundred stores include the unusual cases.
RARE_ZONE_STORES = 50
RARE_WEIGHT = 20.0

# Timestamp spellings and their shares; the first is the real file's own form.
TIMESTAMP_FORMS = {
    "space_utc": 0.88,  # 2023-01-22 12:09:39.388884 UTC
    "no_fraction": 0.04,  # 2023-01-22 12:09:39 UTC
    "iso_z": 0.04,  # 2023-01-22T12:09:39.388884Z
    "space_offset": 0.02,  # 2023-01-22 12:09:39.388884+00:00
    "iso_offset": 0.02,  # 2023-01-22T12:09:39.388884+00:00
}
# Status spellings (active, inactive) and their shares.
STATUS_SPELLINGS = {
    ("active", "inactive"): 0.994,
    ("Active", "Inactive"): 0.003,
    (" active ", " inactive "): 0.002,
    ("ACTIVE", "INACTIVE"): 0.001,
}

# Special hours: the share of stores that have some (a seeded choice, so stores without weekly
# hours are among them in their own share), how many dates each, and the kinds of date.
SPECIAL_SHARE = 0.10
SPECIAL_DATES_PER_STORE = {1: 0.5, 2: 0.3, 3: 0.2}
SPECIAL_KINDS = {
    "closed": 0.35,  # a holiday: both times empty
    "short": 0.30,  # one shorter window, e.g. 10:00-14:30
    "split": 0.20,  # two windows, e.g. 08:00-11:30 and 16:30-21:00
    "overnight": 0.10,  # an evening into the next date, e.g. 20:00-02:00
    "all_day": 0.05,  # 00:00-24:00, an event day
}
SPECIAL_REASONS = {
    "closed": ("holiday", "closed", "inventory"),
    "short": ("short day", "staff training"),
    "split": ("split day",),
    "overnight": ("late night", "event"),
    "all_day": ("open all day",),
}
SPECIAL_NO_REASON = 0.15  # rows whose reason cell is empty
SPECIAL_WITH_SECONDS = 0.5  # rows spelt HH:MM:SS as the weekly hours are (else HH:MM)

Progress = Callable[[str], None]


@dataclass(frozen=True)
class Reference:
    """The real hours and zones, and one template per real store (plus poll-only templates)."""

    hours: pd.DataFrame  # template, day, start_time_local, end_time_local (text)
    templates: pd.DataFrame  # real_id (None for poll-only), has_hours, timezone (None if absent)


def load_reference(data_dir: Path = SAMPLE_DATA_DIR, *, poll_only: bool = True) -> Reference:
    """Read the real feeds as text; templates are numbered in store-id order for stability."""
    con = duckdb.connect()
    hours = con.execute(
        "SELECT * FROM read_csv(?, header = true, all_varchar = true)",
        [str(data_dir / "menu_hours.csv")],
    ).df()
    hours = hours.rename(columns={"dayOfWeek": "day"})[list(HOURS_HEADER.split(","))]
    zones = con.execute(
        "SELECT * FROM read_csv(?, header = true, all_varchar = true)",
        [str(data_dir / "timezones.csv")],
    ).df()
    con.close()
    zones = zones.drop_duplicates("store_id")
    ids = np.union1d(hours["store_id"].unique(), zones["store_id"].to_numpy())
    templates = pd.DataFrame({"real_id": ids})
    templates["has_hours"] = templates["real_id"].isin(hours["store_id"])
    templates = templates.merge(
        zones.rename(columns={"store_id": "real_id", "timezone_str": "timezone"}),
        on="real_id",
        how="left",
    )
    template_of = pd.Series(np.arange(len(templates)), index=templates["real_id"])
    hours = hours.assign(template=template_of.loc[hours["store_id"]].to_numpy())
    if poll_only:
        extra = round(len(templates) * POLL_ONLY_SHARE / (1 - POLL_ONLY_SHARE))
        templates = pd.concat(
            [templates, pd.DataFrame({"real_id": [None] * extra, "has_hours": False})],
            ignore_index=True,
        )
    templates["timezone"] = (
        templates["timezone"].astype(object).where(templates["timezone"].notna(), None)
    )
    return Reference(hours.drop(columns="store_id"), templates)


def _template_order(templates: pd.DataFrame, rng: np.random.Generator) -> np.ndarray:
    """A weighted random order of the templates (Efraimidis-Spirakis), rare kinds first-ish."""
    zone_size = templates.groupby("timezone", dropna=False)["timezone"].transform("size")
    rare = templates["timezone"].isna() & templates["real_id"].notna()
    rare |= templates["timezone"].notna() & (zone_size < RARE_ZONE_STORES)
    weight = np.where(rare.to_numpy(), RARE_WEIGHT, 1.0)
    keys = rng.random(len(templates)) ** (1.0 / weight)
    return np.argsort(-keys, kind="stable")


def _uuids(count: int, rng: np.random.Generator) -> np.ndarray:
    """Random version-4 UUID strings, built column-wise without a per-id Python loop."""
    nibbles = rng.integers(0, 16, size=(count, 32), dtype=np.uint8)
    nibbles[:, 12] = 4
    nibbles[:, 16] = 8 + nibbles[:, 16] % 4
    chars = np.array(list("0123456789abcdef"))[nibbles]
    dashed = np.full((count, 36), "-", dtype="<U1")
    columns = [c for c in range(36) if c not in (8, 13, 18, 23)]
    dashed[:, columns] = chars
    return np.ascontiguousarray(dashed).view("<U36").ravel().astype(object)


def _new_ids(count: int, rng: np.random.Generator, taken: set[str]) -> np.ndarray:
    """Fresh ids: uniform integers below 10**19 (mostly 19 digits, ~8 % above 2**63), ~1 % UUIDs."""
    ids = np.empty(0, dtype=object)
    while len(ids) < count:
        need = count - len(ids)
        batch = rng.integers(0, 10**19, size=need, dtype=np.uint64).astype(str).astype(object)
        is_uuid = rng.random(need) < UUID_SHARE
        batch[is_uuid] = _uuids(int(is_uuid.sum()), rng)
        ids = pd.unique(np.concatenate([ids, batch]))
        ids = ids[~pd.Series(ids).isin(taken).to_numpy()]
    return ids[:count]


def choose_stores(
    reference: Reference, stores: int, rng: np.random.Generator, *, real_ids: bool
) -> pd.DataFrame:
    """``stores`` stores as (store_id, template): every template once before any twice."""
    templates = reference.templates
    if real_ids:
        templates = templates[templates["real_id"].notna()]
        if stores > len(templates):
            raise ValueError(f"real_ids allows at most {len(templates)} stores, not {stores}")
    order = templates.index.to_numpy()[_template_order(templates, rng)]
    chosen = order[np.arange(stores) % len(order)]
    ids = np.empty(stores, dtype=object)
    if real_ids:
        ids[:] = templates.loc[chosen, "real_id"].to_numpy()
    else:
        real = set(reference.templates["real_id"].dropna())
        ids[:] = _new_ids(stores, rng, real)
    return pd.DataFrame({"store_id": ids, "template": chosen})


def _write_frame(con: duckdb.DuckDBPyConnection, frame: pd.DataFrame, path: Path) -> None:
    con.register("frame_to_write", frame)
    con.execute(f"COPY frame_to_write TO '{path}' (HEADER, DELIMITER ',')")
    con.unregister("frame_to_write")


def special_hours(stores: int, days: int, seed: int) -> pd.DataFrame:
    """Special rows of ``SPECIAL_SHARE`` of the ``stores`` store indexes: store, day (offset of
    the local date from the first date of the polls, within ``days``), start and end seconds
    (NaN for a closed date), reason index (-1: none) and whether the times show seconds.

    Arrays all the way: a few numpy draws over the chosen stores' dates, no loop per store."""
    rng = np.random.default_rng([seed, 4])
    chosen = np.sort(rng.choice(stores, size=round(stores * SPECIAL_SHARE), replace=False))
    per_store = rng.choice(
        list(SPECIAL_DATES_PER_STORE), size=len(chosen), p=list(SPECIAL_DATES_PER_STORE.values())
    )
    dates = pd.DataFrame(
        {
            "store": np.repeat(chosen, per_store),
            "day": rng.integers(0, days, size=int(per_store.sum())),
        }
    ).drop_duplicates(ignore_index=True)
    count = len(dates)
    kinds = list(SPECIAL_KINDS)
    kind = rng.choice(len(kinds), size=count, p=list(SPECIAL_KINDS.values()))
    half_hours = rng.integers(0, 7, size=(4, count)) * 1800  # jitter of 0-3 h in half hours
    hour = 3600
    start = np.full(count, np.nan)
    end = np.full(count, np.nan)
    short, split = kind == kinds.index("short"), kind == kinds.index("split")
    overnight, all_day = kind == kinds.index("overnight"), kind == kinds.index("all_day")
    start[short] = 9 * hour + half_hours[0, short]  # 09:00-12:00
    end[short] = start[short] + 3 * hour + half_hours[1, short]  # 3-6 hours later
    start[split] = 7 * hour + half_hours[0, split] // 2  # 07:00-08:30
    end[split] = 11 * hour + half_hours[1, split] // 3  # 11:00-12:00
    start[overnight] = 18 * hour + half_hours[0, overnight] * 4 // 3  # 18:00-22:00
    end[overnight] = 1 * hour + half_hours[1, overnight] * 2 // 3  # 01:00-03:00
    start[all_day], end[all_day] = 0, 24 * hour
    rows = dates.assign(kind=kind, start_sec=start, end_sec=end)
    # a split date's evening window: 16:00-17:30 to 21:00-22:00
    evening = dates[split].assign(
        kind=kinds.index("split"),
        start_sec=16 * hour + half_hours[2, split] // 2,
        end_sec=21 * hour + half_hours[3, split] // 3,
    )
    rows = pd.concat([rows, evening], ignore_index=True)
    rows = rows.sort_values(["store", "day", "start_sec"], kind="stable", ignore_index=True)
    # a reason index into the kind's reasons (the writer spells it), or none
    choices = np.array([len(SPECIAL_REASONS[k]) for k in kinds])[rows["kind"].to_numpy()]
    reason = (rng.random(len(rows)) * choices).astype(np.int64)
    reason[rng.random(len(rows)) < SPECIAL_NO_REASON] = -1
    return rows.assign(reason=reason, seconds=rng.random(len(rows)) < SPECIAL_WITH_SECONDS)


def _special_sql(path: Path, start: str) -> str:
    """Spell the special rows: the store's local date, HH:MM[:SS] times (24:00 only as an end,
    empty for a closed date), the reason text."""
    reasons = " ".join(
        f"WHEN kind = {k} AND reason = {r} THEN '{text}'"
        for k, kind in enumerate(SPECIAL_KINDS)
        for r, text in enumerate(SPECIAL_REASONS[kind])
    )

    def clock(column: str) -> str:
        sec = f"{column}::INTEGER"
        return f"""CASE WHEN {column} IS NULL THEN NULL
                   WHEN seconds THEN printf('%02d:%02d:%02d', {sec} // 3600, {sec} % 3600 // 60,
                                            {sec} % 60)
                   ELSE printf('%02d:%02d', {sec} // 3600, {sec} % 3600 // 60) END"""

    return f"""
        COPY (
            SELECT store_ids.store_id,
                   strftime(DATE '{start}' + day::INTEGER, '%Y-%m-%d') AS date,
                   {clock("start_sec")} AS start_time_local,
                   {clock("end_sec")} AS end_time_local,
                   CASE {reasons} END AS reason
            FROM special_to_write
            JOIN store_ids ON store_ids.store = special_to_write.store
            ORDER BY special_to_write.store, day, start_sec NULLS FIRST
        ) TO '{path}' (HEADER, DELIMITER ',')
    """


def _poll_sql(path: Path, compress: bool) -> str:
    """Spell each poll's status and timestamp; DuckDB trims trailing zeros of the fraction."""
    spell_active = " ".join(f"WHEN {i} THEN '{pair[0]}'" for i, pair in enumerate(STATUS_SPELLINGS))
    spell_inactive = " ".join(
        f"WHEN {i} THEN '{pair[1]}'" for i, pair in enumerate(STATUS_SPELLINGS)
    )
    forms = list(TIMESTAMP_FORMS)
    text = "make_timestamp(ts_us)::VARCHAR"
    iso = f"replace({text}, ' ', 'T')"
    options = "HEADER, DELIMITER ','" + (", COMPRESSION gzip" if compress else "")
    return f"""
        COPY (
            SELECT
                store_id,
                CASE WHEN active THEN CASE spelling {spell_active} END
                     ELSE CASE spelling {spell_inactive} END END AS status,
                CASE form
                    WHEN {forms.index("iso_z")} THEN {iso} || 'Z'
                    WHEN {forms.index("space_offset")} THEN {text} || '+00:00'
                    WHEN {forms.index("iso_offset")} THEN {iso} || '+00:00'
                    ELSE {text} || ' UTC'
                END AS timestamp_utc
            FROM polls_to_write
        ) TO '{path}' ({options})
    """


class PollSimulator:
    """Per-store polling rates and outage chains, advanced one hour at a time.

    Each hour draws from its own seeded generator, so the polls do not depend on how the hours
    are split into files.
    """

    def __init__(self, stores: int, seed: int, start: datetime) -> None:
        rng = np.random.default_rng([seed, 1])
        self.stores = stores
        self.seed = seed
        self.start_us = int(start.timestamp()) * 1_000_000
        # Most stores answer most hours; a few answer rarely (mean ~0.69 polls an hour).
        self.poll_rate = rng.beta(4.0, 1.8, size=stores)
        # Outages start rarely and last a few hours; some stores are much flakier than others.
        self.fail_rate = np.minimum(rng.gamma(0.7, 0.035, size=stores), 0.3)
        self.recover_rate = rng.uniform(0.2, 0.5, size=stores)
        inactive_share = self.fail_rate / (self.fail_rate + self.recover_rate)
        self.active = rng.random(stores) >= inactive_share
        self.hour = 0

    def next_hour(self) -> dict[str, np.ndarray]:
        """The polls of the next hour: store index, status, microsecond timestamp and spelling."""
        rng = np.random.default_rng([self.seed, 2, self.hour])
        flip = rng.random(self.stores)
        self.active = np.where(self.active, flip >= self.fail_rate, flip < self.recover_rate)
        store = np.flatnonzero(rng.random(self.stores) < self.poll_rate).astype(np.int32)
        count = len(store)
        ts_us = self.start_us + self.hour * 3_600_000_000
        ts_us = ts_us + rng.integers(0, 3_600_000_000, size=count, dtype=np.int64)
        form = rng.choice(len(TIMESTAMP_FORMS), size=count, p=list(TIMESTAMP_FORMS.values()))
        ts_us[form == list(TIMESTAMP_FORMS).index("no_fraction")] //= 1_000_000
        ts_us[form == list(TIMESTAMP_FORMS).index("no_fraction")] *= 1_000_000
        spelling = rng.choice(len(STATUS_SPELLINGS), size=count, p=list(STATUS_SPELLINGS.values()))
        self.hour += 1
        return {
            "store": store,
            "active": self.active[store],
            "ts_us": ts_us,
            "form": form.astype(np.int8),
            "spelling": spelling.astype(np.int8),
        }


def generate_dataset(
    out_dir: Path,
    stores: int = 14000,
    days: int = 8,
    seed: int = 0,
    *,
    start: str = "2023-01-18",
    poll_files: int = 1,
    extra_hours: int = 0,
    real_ids: bool = False,
    compress: bool = False,
    progress: Progress | None = None,
) -> dict:
    """Write ``menu_hours.csv``, ``timezones.csv``, ``special_hours.csv`` and
    ``store_status_NNN.csv[.gz]``.

    Poll files split the period in consecutive time slices (as hourly deliveries would) and
    each file's rows are shuffled. ``extra_hours`` more hours after the period go to one more
    file (``extra_poll_file``: the next delivery of a live feed). Special hours have a random
    stream of their own, so the other files are the same with or without them; ``bytes`` counts
    the other files only (what an ingest of the three first feeds reads). Returns counts, paths
    and the elapsed seconds.
    """
    began = time.perf_counter()
    say = progress or (lambda message: None)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    reference = load_reference(poll_only=not real_ids)
    chosen = choose_stores(reference, stores, np.random.default_rng([seed, 0]), real_ids=real_ids)
    con = duckdb.connect()

    hours = chosen.merge(reference.hours, on="template")[HOURS_HEADER.split(",")]
    hours_path = out_dir / "menu_hours.csv"
    _write_frame(con, hours, hours_path)
    zone_of_template = reference.templates.loc[chosen["template"], "timezone"].to_numpy()
    zones = chosen.assign(timezone_str=zone_of_template)
    zones = zones.loc[zones["timezone_str"].notna(), ["store_id", "timezone_str"]]
    zones_path = out_dir / "timezones.csv"
    _write_frame(con, zones, zones_path)
    say(f"{stores} stores: {len(hours)} business-hours rows, {len(zones)} time zones")

    special = special_hours(stores, days, seed)
    special_path = out_dir / "special_hours.csv"
    con.register("special_to_write", special)
    con.register("store_ids", chosen[["store_id"]].assign(store=np.arange(stores)))
    con.execute(_special_sql(special_path, start))
    con.unregister("special_to_write")
    con.unregister("store_ids")
    special_stores = int(special["store"].nunique())
    say(f"{special_path.name}: {len(special)} rows for {special_stores} stores")

    ids = pa.array(chosen["store_id"].to_numpy(), type=pa.string())
    simulator = PollSimulator(stores, seed, datetime.fromisoformat(start).replace(tzinfo=UTC))
    hours_per_file = np.array_split(np.arange(days * 24), max(1, poll_files))
    if extra_hours:
        hours_per_file.append(np.arange(days * 24, days * 24 + extra_hours))
    poll_paths: list[Path] = []
    polls = inactive = 0
    for number, file_hours in enumerate(hours_per_file):
        parts = [simulator.next_hour() for _ in file_hours]
        batch = {key: np.concatenate([part[key] for part in parts]) for key in parts[0]}
        shuffle = np.random.default_rng([seed, 3, number]).permutation(len(batch["store"]))
        batch = {key: values[shuffle] for key, values in batch.items()}
        store = batch.pop("store")
        table = pa.table(
            {"store_id": pa.DictionaryArray.from_arrays(pa.array(store), ids), **batch}
        )
        suffix = ".csv.gz" if compress else ".csv"
        path = out_dir / f"store_status_{number:03d}{suffix}"
        con.register("polls_to_write", table)
        con.execute(_poll_sql(path, compress))
        con.unregister("polls_to_write")
        poll_paths.append(path)
        polls += len(store)
        inactive += int((~batch["active"]).sum())
        say(f"{path.name}: {len(store)} polls")
    con.close()
    return {
        "stores": stores,
        "days": days,
        "seed": seed,
        "start": start,
        "polls": polls,
        "inactive_share": inactive / max(polls, 1),
        "hours_rows": len(hours),
        "timezone_rows": len(zones),
        "stores_without_hours": int(stores - hours["store_id"].nunique()),
        "stores_without_timezone": int(stores - len(zones)),
        "special_rows": len(special),
        "special_stores": special_stores,
        "special_store_dates": int(special[["store", "day"]].drop_duplicates().shape[0]),
        "menu_hours": str(hours_path),
        "timezones": str(zones_path),
        "special_hours": str(special_path),
        "special_hours_bytes": special_path.stat().st_size,
        "poll_files": [str(path) for path in poll_paths[: len(poll_paths) - bool(extra_hours)]],
        "extra_poll_file": str(poll_paths[-1]) if extra_hours else None,
        "bytes": sum(Path(p).stat().st_size for p in [hours_path, zones_path, *poll_paths]),
        "seconds": time.perf_counter() - began,
    }


# --- the sample data shipped in data/ -------------------------------------------------------

SAMPLE_STORES = 1500
SAMPLE_SEED = 2023
SAMPLE_POLLS = "store_status.csv.gz"
SAMPLE_BAD_ROWS = "store_status_bad_rows.csv"


def build_sample(data_dir: Path = SAMPLE_DATA_DIR, progress: Progress | None = None) -> dict:
    """Polls of ~1,500 real stores over 2023-01-18..25 as one gzip file, plus a few bad rows.

    The real hours and zone files in ``data_dir`` are left as they are.
    """
    with tempfile.TemporaryDirectory() as scratch:
        info = generate_dataset(
            Path(scratch),
            SAMPLE_STORES,
            days=8,
            seed=SAMPLE_SEED,
            start="2023-01-18",
            real_ids=True,
            compress=True,
            progress=progress,
        )
        target = data_dir / SAMPLE_POLLS
        shutil.copyfile(info["poll_files"][0], target)
    _write_bad_rows(target, data_dir / SAMPLE_BAD_ROWS)
    info["poll_files"] = [str(target)]
    info["bad_rows"] = str(data_dir / SAMPLE_BAD_ROWS)
    return info


def _write_bad_rows(polls_path: Path, out_path: Path) -> None:
    """One row per kind of fault ingestion must quarantine, plus a conflicting duplicate.

    The duplicate repeats an in-sample active poll as ``inactive`` in another spelling of the
    same instant, which the engine must resolve to inactive.
    """
    con = duckdb.connect()
    store_id, stamp = con.execute(
        """
        SELECT store_id, timestamp_utc FROM read_csv(?, header = true, all_varchar = true)
        WHERE status = 'active' AND timestamp_utc LIKE '2023-01-24 1_:%.% UTC'
        ORDER BY store_id, timestamp_utc LIMIT 1
        """,
        [str(polls_path)],
    ).fetchone()
    con.close()
    iso = stamp.removesuffix(" UTC").replace(" ", "T") + "Z"
    rows = [
        POLLS_HEADER,
        f"{store_id},unknown,2023-01-24 10:05:00 UTC",  # bad status
        f"{store_id},,2023-01-24 10:06:00 UTC",  # empty status
        f"{store_id},active,2023-01-24 25:61:00 UTC",  # impossible time
        f"{store_id},active,yesterday",  # not a timestamp
        "#N/A,active,2023-01-24 10:07:00 UTC",  # invalid store id
        ",inactive,2023-01-24 10:08:00 UTC",  # missing store id
        f"{store_id},active",  # too few fields
        f"{store_id},active,2023-01-24 10:09:00 UTC,extra",  # too many fields
        f"{store_id},inactive,{iso}",  # same instant as an active poll: inactive wins
    ]
    out_path.write_text("\n".join(rows) + "\n")
