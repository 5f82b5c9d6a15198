"""``storemon soak``: the whole product under a live feed, with processes killed at random.

It starts `storemon up` on a new state folder (the sample data, free ports on 127.0.0.1) and
runs, for ``--minutes``:

- a feed simulator: an hourly poll file for a few hundred stores of its own, written into
  ``incoming/`` every ``--hour-seconds`` (an accelerated clock that carries on after the
  sample's last hour);
- a client that triggers reports all the time (some with ``?fresh=true``), follows each to its
  end and downloads the CSV of those that complete;
- with ``--chaos``, a loop that sends SIGKILL to a random process of the product every
  ``--kill-every`` seconds: a run worker, the code server, the daemon, the webserver or the API.

The alerts' webhook is a receiver in this process (tools/receiver.py) that refuses a tenth of
the events' first posts with 503.

Then it lets the product settle (every file ingested, every report ended, every alert event
delivered), stops it with SIGINT as a user would, and checks: every poll of every file is
stored exactly once (the simulator's count equals DuckDB's), every trigger ended Complete or
Failed, every CSV served equals `storemon report` for its as-of, byte for byte, every event of
the alert table was acknowledged by the receiver with its own key and body and the receiver
got no other, the DuckDB file opens, and no temporary file is left. It prints the figures and
exits 1 if a check fails.
"""

from __future__ import annotations

import collections
import contextlib
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

import duckdb
import httpx
import psutil

from storemon_pipeline.engine.files import atomic_target, read_json
from storemon_pipeline.engine.instants import parse_iso
from storemon_pipeline.settings import PROJECT_ROOT
from storemon_pipeline.tools.receiver import Receiver, running_receiver

HOST = "127.0.0.1"
FEED_START = datetime(2023, 1, 26)  # the hour after the sample's last
STORES = 300
SETTLE_SECONDS = 300.0
TARGETS = ("run worker", "code-server", "daemon", "webserver", "api")
WEBHOOK_REFUSALS = 0.1

Out = Callable[[str], None]


def _free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind((HOST, 0))
        return probe.getsockname()[1]


@dataclass
class Soak:
    home: Path
    minutes: float
    chaos: bool
    hour_seconds: float
    kill_every: float
    out: Out
    seed: int = 0
    dagster_port: int = field(default_factory=_free_port)
    api_port: int = field(default_factory=_free_port)
    stop: threading.Event = field(default_factory=threading.Event)
    # what happened
    files: list[Path] = field(default_factory=list)
    polls_written: set[tuple[str, str]] = field(default_factory=set)
    triggers: dict[str, str] = field(default_factory=dict)  # report id -> final status
    failures: collections.Counter = field(default_factory=collections.Counter)
    # what launched the run each ended report came from (storemon/trigger: a trigger's own run
    # says api; an alias may stand for a sensor's report)
    launched_by: collections.Counter = field(default_factory=collections.Counter)
    untagged_runs: list[str] = field(default_factory=list)  # own runs not tagged api
    # report id -> (as_of, when its CSV was made, the CSV)
    downloads: dict[str, tuple[str, str, bytes]] = field(default_factory=dict)
    late: int = 0  # reports made before a file of their week was (re)loaded: not comparable
    kills: collections.Counter = field(default_factory=collections.Counter)
    unavailable: int = 0
    problems: list[str] = field(default_factory=list)
    receiver: Receiver | None = None
    alert_figures: str = ""

    @property
    def api(self) -> str:
        return f"http://{HOST}:{self.api_port}"

    # --- the product ------------------------------------------------------------------------

    def start_product(self) -> subprocess.Popen:
        env = {
            **os.environ,
            "STOREMON_HOME": str(self.home),
            "STOREMON_SENSOR_INTERVAL_SECONDS": "2",
            "PYTHONUNBUFFERED": "1",
        }
        if self.receiver is not None:
            env["STOREMON_ALERT_WEBHOOK_URLS"] = self.receiver.url
        env.pop("DAGSTER_HOME", None)
        log = open(self.home.parent / "up.log", "ab")  # noqa: SIM115 - closed with the process
        product = subprocess.Popen(
            [sys.executable, "-m", "storemon_pipeline.cli", "up",
             "--dagster-port", str(self.dagster_port), "--api-port", str(self.api_port)],
            stdout=log, stderr=subprocess.STDOUT, env=env, cwd=PROJECT_ROOT,
        )
        deadline = time.monotonic() + 300
        while "Dagster UI:" not in (self.home.parent / "up.log").read_text(errors="replace"):
            if product.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("storemon up did not start: see " + str(log.name))
            time.sleep(0.5)
        return product

    def services(self) -> dict:
        return (read_json(self.home / "services.json") or {}).get("services", {})

    # --- the feed ---------------------------------------------------------------------------

    def feed(self) -> None:
        rng = random.Random(self.seed)
        stores = [f"soak-{i:04d}" for i in range(STORES)]
        active = dict.fromkeys(stores, True)
        hour = FEED_START
        while not self.stop.is_set():
            rows = []
            for store in stores:
                if rng.random() < 0.1:
                    active[store] = not active[store]
                if rng.random() < 0.8:
                    instant = hour + timedelta(microseconds=rng.randrange(3_600_000_000))
                    rows.append((store, active[store], f"{instant:%Y-%m-%d %H:%M:%S.%f} UTC"))
            path = self.home / "incoming" / f"polls_{hour:%Y%m%d_%H}.csv"
            with atomic_target(path) as temporary:
                temporary.write_text("store_id,status,timestamp_utc\n" + "".join(
                    f"{s},{'active' if a else 'inactive'},{t}\n" for s, a, t in rows))
            self.files.append(path)
            self.polls_written |= {(s, t) for s, _, t in rows}
            hour += timedelta(hours=1)
            self.stop.wait(self.hour_seconds)

    # --- the client -------------------------------------------------------------------------

    def client(self) -> None:
        rng = random.Random(self.seed + 1)
        with httpx.Client(base_url=self.api, timeout=30) as api:
            while not self.stop.is_set():
                try:
                    answer = api.post("/trigger_report", params={"fresh": rng.random() < 0.3})
                except httpx.HTTPError:
                    self.unavailable += 1
                    self.stop.wait(1)
                    continue
                if answer.status_code != 202:
                    self.unavailable += 1
                    self.stop.wait(1)
                    continue
                report_id = answer.json()["report_id"]
                self.triggers[report_id] = "Running"
                self.follow(api, report_id, deadline=time.monotonic() + SETTLE_SECONDS)
                self.stop.wait(0.5)

    def follow(self, api: httpx.Client, report_id: str, deadline: float) -> None:
        """Ask for the report until it ends (a down API or Dagster only delays the answer)."""
        while time.monotonic() < deadline:
            try:
                status = api.get(f"/reports/{report_id}")
                if status.status_code == 200 and status.json()["status"] != "Running":
                    body = status.json()
                    self.triggers[report_id] = body["status"]
                    self.launched_by[body.get("trigger")] += 1
                    own_run = (body["links"].get("dagster") or "").endswith(f"/runs/{report_id}")
                    if own_run and body.get("trigger") != "api":
                        self.untagged_runs.append(report_id)
                    if body["status"] == "Complete":
                        csv = api.get(f"/reports/{report_id}/csv")
                        csv.raise_for_status()
                        self.downloads[report_id] = (body["as_of"], body["created"], csv.content)
                    else:
                        self.failures[(body.get("error") or "?").splitlines()[0][:120]] += 1
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.5)

    # --- the chaos --------------------------------------------------------------------------

    def chaos_loop(self) -> None:
        rng = random.Random(self.seed + 2)
        while not self.stop.wait(self.kill_every):
            target = rng.choice(TARGETS)
            pid = self._pid_of(target)
            if pid is None:
                self.kills[f"{target} (none running)"] += 1
                continue
            try:
                os.kill(pid, signal.SIGKILL)
                self.kills[target] += 1
            except ProcessLookupError:
                self.kills[f"{target} (gone already)"] += 1

    def _pid_of(self, target: str) -> int | None:
        services = self.services()
        if target != "run worker":
            return (services.get(target) or {}).get("pid")
        code_server = (services.get("code-server") or {}).get("pid")
        try:
            workers = [
                p for p in psutil.Process(code_server).children()
                if "resource_tracker" not in " ".join(p.cmdline())
            ] if code_server else []
        except psutil.Error:
            return None
        return workers[0].pid if workers else None

    # --- the end ----------------------------------------------------------------------------

    def settle(self) -> None:
        """Every file ingested (the latest poll reaches the feed's last hour) and every report
        ended, or SETTLE_SECONDS."""
        deadline = time.monotonic() + SETTLE_SECONDS
        last_file_hour = datetime.strptime(self.files[-1].stem, "polls_%Y%m%d_%H")
        while time.monotonic() < deadline:
            latest = (read_json(self.home / "latest_poll.json") or {}).get("latest_poll") or ""
            if latest >= last_file_hour.isoformat():
                break
            time.sleep(1)
        with httpx.Client(base_url=self.api, timeout=30) as api:
            for report_id, status in list(self.triggers.items()):
                if status == "Running":
                    self.follow(api, report_id, deadline)
        # the alerts' events: the evaluation after the last ingest done, then nothing pending
        while time.monotonic() < deadline:
            ingested = parse_iso((read_json(self.home / "latest_poll.json") or {}).get("updated"))
            status = read_json(self.home / "alerts" / "delivery.json") or {}
            evaluated = parse_iso(status.get("checked_at"))
            if ingested and evaluated and evaluated >= ingested and status.get("pending") == 0:
                break
            time.sleep(1)

    def check(self) -> None:
        from storemon_pipeline.engine.db import connect
        from storemon_pipeline.engine.report import write_report_csv

        still = [i for i, s in self.triggers.items() if s not in ("Complete", "Failed")]
        if still:
            self.problems.append(f"{len(still)} report(s) never ended, e.g. {still[:3]}")
        if self.untagged_runs:
            self.problems.append(
                f"{len(self.untagged_runs)} run(s) the API launched are not tagged "
                f"storemon/trigger=api, e.g. {self.untagged_runs[:3]}"
            )
        try:
            con = connect(self.home / "storemon.duckdb", read_only=True)
        except Exception as exc:
            self.problems.append(f"the DuckDB file does not open: {exc}")
            return
        try:
            stored = con.execute(
                "SELECT count(*), count(DISTINCT (store_key, ts)) FROM polls "
                "JOIN stores USING (store_key) WHERE store_id LIKE 'soak-%'"
            ).fetchone()
            if stored != (len(self.polls_written), len(self.polls_written)):
                self.problems.append(
                    f"polls: the feed wrote {len(self.polls_written)}, DuckDB holds {stored[0]} "
                    f"({stored[1]} distinct)"
                )
            # a file whose ingest run was killed is loaded again later, after newer files: a
            # report made meanwhile lacks its polls, rightly, and cannot equal one made now
            loaded = con.execute(
                "SELECT file, max(loaded_at) FROM ingest_manifest WHERE feed = 'polls' "
                "GROUP BY file"
            ).fetchall()
            file_hours = [
                (datetime.strptime(Path(name).stem, "polls_%Y%m%d_%H"), at)
                for name, at in loaded if Path(name).stem.startswith("polls_")
            ]
            with tempfile.TemporaryDirectory() as scratch:
                by_as_of: dict[str, bytes] = {}
                for report_id, (as_of, created, content) in self.downloads.items():
                    made = parse_iso(created)
                    as_of_instant = parse_iso(as_of)
                    if any(h <= as_of_instant and at > made for h, at in file_hours):
                        self.late += 1
                        continue
                    if as_of not in by_as_of:
                        out = Path(scratch) / f"{len(by_as_of)}.csv"
                        write_report_csv(con, out, as_of=as_of_instant)
                        by_as_of[as_of] = out.read_bytes()
                    if content != by_as_of[as_of]:
                        self.problems.append(f"report {report_id} differs from storemon report")
            self.check_alerts(con)
        finally:
            con.close()
        # atomic writes leave ".<name>.<random>" behind only if they die half way; DuckDB's spill
        # files live in storemon.duckdb.tmp/
        folders = [self.home / "reports", self.home / "reports" / "aliases", self.home / "incoming"]
        leftovers = [p for f in folders if f.is_dir() for p in f.glob(".*") if p.is_file()]
        leftovers += [p for p in self.home.glob("*.tmp") if p.is_dir() and any(p.iterdir())]
        if leftovers:
            self.problems.append(f"temporary files left: {leftovers[:5]}")

    def check_alerts(self, con: duckdb.DuckDBPyConnection) -> None:
        """Every event of the outbox acknowledged by the receiver under its key with its body,
        and nothing else received."""
        events = dict(con.execute("SELECT event_key, payload FROM alert_outbox").fetchall())
        undelivered = con.execute(
            "SELECT count(*) FROM alert_outbox WHERE delivered_at IS NULL"
        ).fetchone()[0]
        alerts = dict(con.execute("SELECT state, count(*) FROM alerts GROUP BY state").fetchall())
        received = self.receiver.requests if self.receiver else []
        accepted = self.receiver.accepted_by_key() if self.receiver else {}
        if undelivered:
            self.problems.append(f"alerts: {undelivered} event(s) not delivered at the end")
        if set(accepted) != set(events):
            self.problems.append(
                f"alerts: the outbox holds {len(events)} events, the receiver acknowledged "
                f"{len(accepted)}; {len(set(accepted) - set(events))} unknown, "
                f"{len(set(events) - set(accepted))} missing"
            )
        wrong = [k for k, posts in accepted.items()
                 if k in events and any(p.body.decode() != events[k] for p in posts)]
        if wrong:
            self.problems.append(f"alerts: {len(wrong)} event(s) received with another body")
        twice = sum(1 for posts in accepted.values() if len(posts) > 1)
        refused = len(received) - sum(map(len, accepted.values()))
        self.alert_figures = (
            f"alerts: {alerts.get('open', 0)} open, {alerts.get('resolved', 0)} resolved; "
            f"{len(events)} events, {len(received)} posts received ({refused} refused), "
            f"{twice} event(s) acknowledged more than once (same key)"
        )

    def summary(self, seconds: float) -> None:
        statuses = collections.Counter(self.triggers.values())
        self.out(
            f"soak of {seconds / 60:.1f} min{' with chaos' if self.chaos else ''}: "
            f"{len(self.files)} poll files ({len(self.polls_written):,} polls); "
            f"{len(self.triggers)} triggers: {dict(statuses)}; "
            f"{len(self.downloads)} CSVs downloaded ({self.late} made before a file of their "
            f"week was loaded again, not compared); {self.unavailable} answers not 202"
        )
        self.out("reports' runs launched by: " + ", ".join(
            f"{k or 'unknown to Dagster'} {n}" for k, n in self.launched_by.most_common()
        ))
        if self.alert_figures:
            self.out(self.alert_figures)
        if self.kills:
            self.out("kills: " + ", ".join(f"{k} {n}" for k, n in sorted(self.kills.items())))
        for reason, count in self.failures.most_common():
            self.out(f"failed ({count}): {reason}")
        for problem in self.problems:
            self.out(f"PROBLEM: {problem}")
        self.out("checks: " + ("all passed" if not self.problems else "FAILED"))


def _descendants(pid: int) -> list[psutil.Process]:
    try:
        return psutil.Process(pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return []


def run_soak(
    minutes: float = 2.0,
    chaos: bool = False,
    hour_seconds: float = 5.0,
    kill_every: float = 15.0,
    home: Path | None = None,
    out: Out = print,
) -> int:
    home = home or Path(tempfile.mkdtemp(prefix="storemon-soak-")) / "state"
    home.mkdir(parents=True, exist_ok=True)
    with running_receiver() as receiver:
        receiver.refuse_share = WEBHOOK_REFUSALS
        soak = Soak(home, minutes, chaos, hour_seconds, kill_every, out, receiver=receiver)
        return _soak(soak, out)


def _soak(soak: Soak, out: Out) -> int:
    home = soak.home
    out(f"soak: state folder {home}; storemon up log {home.parent / 'up.log'}")
    began = time.monotonic()
    product = soak.start_product()
    out(f"soak: product up in {time.monotonic() - began:.0f} s; Dagster UI "
        f"http://{HOST}:{soak.dagster_port}, API {soak.api}")
    workers = [threading.Thread(target=soak.feed, daemon=True),
               threading.Thread(target=soak.client, daemon=True)]
    if soak.chaos:
        workers.append(threading.Thread(target=soak.chaos_loop, daemon=True))
    started = time.monotonic()
    try:
        for worker in workers:
            worker.start()
        soak.stop.wait(soak.minutes * 60)
        soak.stop.set()
        for worker in workers:
            worker.join(SETTLE_SECONDS)
        soak.settle()
    finally:
        soak.stop.set()
        started_by_product = _descendants(product.pid)
        if product.poll() is None:
            product.send_signal(signal.SIGINT)
            try:
                product.wait(120)
            except subprocess.TimeoutExpired:
                product.kill()
                soak.problems.append("storemon up did not stop within 2 minutes of SIGINT")
        left = [p.pid for p in started_by_product if p.is_running()]
        if left:
            soak.problems.append(f"processes left running after storemon up stopped: {left}")
            for pid in left:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
    soak.check()
    soak.summary(time.monotonic() - started)
    return 1 if soak.problems else 0
