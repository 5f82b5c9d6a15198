"""The ``storemon`` command."""

from __future__ import annotations

import argparse
import functools
import json
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from storemon_pipeline.engine.instants import parse_instant
from storemon_pipeline.settings import DEFAULT_TIMEZONE, SAMPLE_DATA_DIR, Settings, get_settings

if TYPE_CHECKING:
    import duckdb

    from storemon_pipeline.engine.report import ReportSummary
    from storemon_pipeline.engine.sla import Period, SlaSummary


def _instant(text: str) -> datetime:
    """An ISO-8601 instant; without an offset it is UTC."""
    try:
        return parse_instant(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not an ISO-8601 instant: {text!r}") from exc


def cmd_ingest(args: argparse.Namespace) -> int:
    from storemon_pipeline.engine.db import database
    from storemon_pipeline.engine.ingest import data_version, drop_expired_polls, ingest_paths
    from storemon_pipeline.engine.report import kept_history, latest_poll
    from storemon_pipeline.engine.state import write_latest_poll

    missing = [path for path in args.paths if not path.exists()]
    if missing:  # a typo: nothing is loaded
        for path in missing:
            print(f"storemon ingest: no such file or folder: {path}", file=sys.stderr)
        return 1
    settings = get_settings()
    started = time.perf_counter()
    if settings.shards > 1:
        return _ingest_shards(settings, args.paths, started)
    with database(
        settings.duckdb_path, wait_seconds=args.wait, limits=settings.duckdb_limits
    ) as con:
        results = ingest_paths(
            con, args.paths, progress=lambda r: print(r.summary(), flush=True),
            guards=settings.ingest_guards,
        )
        if settings.retention_days:
            expired = drop_expired_polls(con, kept_history(settings.retention_days))
            print(f"retention ({settings.retention_days} days): {expired} older polls dropped")
        # the REST API and the sensors read it instead of opening DuckDB
        write_latest_poll(settings.state_dir, latest_poll(con), data_version(con))
    refused = [r for r in results if r.status == "refused"]
    print(
        f"{len(results)} file(s) in {time.perf_counter() - started:.2f} s into "
        f"{settings.duckdb_path}" + (f"; {len(refused)} refused" if refused else "")
    )
    return 1 if refused else 0


def _ingest_shards(settings: Settings, paths: list[Path], started: float) -> int:
    """The steps Dagster runs one per file and one per shard, one after another."""
    from storemon_pipeline.engine.sharded import ingest_one_after_another

    ingested = ingest_one_after_another(settings.sharded, paths)
    results = ingested.results
    for result in results:
        print(result.summary(), flush=True)
    if settings.retention_days:
        print(f"retention ({settings.retention_days} days): {ingested.expired} older polls "
              "dropped")
    refused = [r for r in results if r.status == "refused"]
    print(
        f"{len(results)} file(s) in {time.perf_counter() - started:.2f} s into "
        f"{settings.shards} shards" + (f"; {len(refused)} refused" if refused else "")
    )
    return 1 if refused else 0


def cmd_settle(args: argparse.Namespace) -> int:
    """Settle the local days that can be (what the sla_days asset does after every ingest run),
    in the one file or in each shard."""
    from storemon_pipeline.engine.db import database
    from storemon_pipeline.engine.settled import settle_days
    from storemon_pipeline.engine.sharded import settle_shard, shard_settlements

    settings = get_settings()
    started = time.perf_counter()
    if settings.shards > 1:
        settlement = shard_settlements(
            [settle_shard(settings.sharded, k) for k in range(settings.shards)]
        ).settlement
    else:
        with database(
            settings.duckdb_path, wait_seconds=args.wait, limits=settings.duckdb_limits
        ) as con:
            settlement = settle_days(con)
    print(
        f"settled {settlement.days} local day(s) of {settlement.stores} store(s) in "
        f"{time.perf_counter() - started:.2f} s"
        + (f"; {settlement.waiting} store(s) wait for a poll in their hours"
           if settlement.waiting else "")
        + (f"; settled from {settlement.first_date} to {settlement.last_date}, "
           f"{settlement.total_days} store-days" if settlement.first_date else "")
    )
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from storemon_pipeline.engine.db import database, ensure_spill_room
    from storemon_pipeline.engine.report import NoPollsError, result_summary, write_report_csv

    settings = get_settings()
    started = time.perf_counter()
    ensure_spill_room(settings.state_dir, settings.duckdb_limits)
    out = args.out or settings.reports_dir / "latest.csv"
    try:
        if settings.shards > 1:
            as_of, summary = _report_shards(settings, args.as_of, out)
        else:
            with database(
                settings.duckdb_path, wait_seconds=args.wait, limits=settings.duckdb_limits
            ) as con:
                as_of = write_report_csv(con, out, as_of=args.as_of).as_of
                summary = result_summary(con)
    except NoPollsError as exc:
        print(f"storemon report: {exc}", file=sys.stderr)
        return 1
    share = summary.uptime_share_last_week
    print(
        f"report as of {as_of.isoformat(sep=' ')} UTC: {summary.stores} stores, "
        f"{summary.stores_with_downtime_last_week} with downtime last week, uptime last week "
        + ("n/a" if share is None else f"{100 * share:.2f} %")
        + f" of business time\nwritten to {out} in {time.perf_counter() - started:.2f} s"
    )
    return 0


def _report_shards(
    settings: Settings, as_of: datetime | None, out: Path
) -> tuple[datetime, ReportSummary]:
    """One report over the shards: their steps one after another, then assembled."""
    import uuid

    from storemon_pipeline.engine.history import partition_hour_of
    from storemon_pipeline.engine.instants import as_naive_utc
    from storemon_pipeline.engine.sharded import assemble_report, newest_poll, report_shard

    state = settings.sharded
    instant = as_naive_utc(as_of) if as_of else newest_poll(state)
    wanted = {partition_hour_of(instant): instant}
    run_id = f"cli-{uuid.uuid4()}"
    files = [f for k in range(state.shards) for f in report_shard(state, k, run_id, wanted)]
    assembled = assemble_report(state, run_id, files, wanted, out, save_history=False)
    return assembled.as_of, assembled.summary


def cmd_reshard(args: argparse.Namespace) -> int:
    from storemon_pipeline.engine.shards import reshard

    settings = get_settings()
    started = time.perf_counter()
    before = reshard(settings.state_dir, args.shards, settings.duckdb_limits)
    print(
        f"{before} shard(s) -> {args.shards} in {time.perf_counter() - started:.2f} s; set "
        f"STOREMON_SHARDS={args.shards} for every process of this state folder"
    )
    return 0


def cmd_history(args: argparse.Namespace) -> int:
    """The store's rows of every report partition, as CSV: nothing is recomputed."""
    from storemon_pipeline.engine.history import read_store_history
    from storemon_pipeline.engine.ingest import is_valid_store_id

    if not is_valid_store_id(args.store_id):
        print(f"storemon history: {args.store_id!r} is not a store id the ingest accepts",
              file=sys.stderr)
        return 2
    settings = get_settings()
    history = read_store_history(
        settings.history_path, args.store_id, since=args.since, until=args.until
    )
    if not history.known:
        print(f"storemon history: no report partition holds store {args.store_id}",
              file=sys.stderr)
        return 1
    rows = history.rows.rename(columns={"partition_hour": "partition"})
    rows["partition"] = rows["partition"].dt.strftime("%Y-%m-%d-%H:%M")
    rows["as_of"] = rows["as_of"].map(lambda t: t.isoformat(sep=" ") + " UTC")
    rows.to_csv(sys.stdout, index=False)
    return 0


def cmd_explain(args: argparse.Namespace) -> int:
    """How the store's numbers were made: its week as of an instant."""
    from storemon_pipeline.engine.explain import (
        MalformedStoreIdError,
        UnknownStoreError,
        read_store_timeline,
        timeline_text,
    )
    from storemon_pipeline.engine.report import NoPollsError

    try:
        settings = get_settings()
        timeline, source = read_store_timeline(
            settings.state_dir, settings.shard_paths, settings.history_path, args.store_id,
            args.as_of, wait_seconds=settings.lock_wait_seconds, limits=settings.duckdb_limits,
        )
    except MalformedStoreIdError as exc:
        print(f"storemon explain: {exc}", file=sys.stderr)
        return 2
    except (UnknownStoreError, NoPollsError) as exc:
        print(f"storemon explain: {exc}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(timeline.as_json(source), indent=2))
    else:
        print(timeline_text(timeline, source), end="")
    return 0


def _sla_period(args: argparse.Namespace) -> Period:
    """The period the arguments ask for; PeriodError with a message when they are wrong."""
    from storemon_pipeline.engine.sla import requested_period

    return requested_period(
        args.since, args.until, args.month, args.week, ("--from", "--to", "--month", "--week")
    )


def cmd_sla(args: argparse.Namespace) -> int:
    """Availability, incidents and the target of every store over one period, as CSV."""
    from storemon_pipeline.engine.db import ensure_spill_room
    from storemon_pipeline.engine.ingest import is_valid_store_id
    from storemon_pipeline.engine.report import NoPollsError
    from storemon_pipeline.engine.sla import (
        PeriodError,
        compute_sla,
        export_sla_csv,
        sla_database,
        sla_summary,
        target_millionths,
    )

    settings = get_settings()
    target = settings.sla_target_pct if args.target is None else args.target
    try:
        period = _sla_period(args)
        target_millionths(target)
    except PeriodError as exc:
        print(f"storemon sla: {exc}", file=sys.stderr)
        return 2
    store_ids = args.store or None
    for store_id in store_ids or ():
        if not is_valid_store_id(store_id):
            print(f"storemon sla: {store_id!r} is not a store id the ingest accepts",
                  file=sys.stderr)
            return 2
    started = time.perf_counter()
    ensure_spill_room(settings.state_dir, settings.duckdb_limits)
    out = args.out or settings.reports_dir / f"sla-{_period_file_name(period)}.csv"

    def write(con: duckdb.DuckDBPyConnection) -> tuple[datetime, SlaSummary, set[str]]:
        run = compute_sla(con, [period], store_ids, target_pct=target)
        export_sla_csv(con, out)
        reported = {row[0] for row in con.execute("SELECT store_id FROM sla_results").fetchall()}
        return run.latest_poll, sla_summary(con), reported

    try:
        with sla_database(
            settings.shard_paths, limits=settings.duckdb_limits, wait_seconds=args.wait
        ) as con:
            latest, summary, reported = write(con)
    except NoPollsError as exc:
        print(f"storemon sla: {exc}", file=sys.stderr)
        return 1
    unknown = sorted(set(store_ids or ()) - reported)
    if unknown:
        print(
            "storemon sla: no poll of store(s) " + ", ".join(unknown)
            + " at or before the period's end: not in the CSV",
            file=sys.stderr,
        )
    share = summary.availability_pct
    kind = "each store's local " if period.local else "UTC "
    print(
        f"sla {period.name} ({kind}period, cut at the latest poll "
        f"{latest.isoformat(sep=' ')} UTC): {summary.stores} stores, "
        f"{summary.stores_below_target} below the target of {target:g} %"
        + (f", {summary.stores_without_business_time} without business time"
           if summary.stores_without_business_time else "")
        + "; the fleet's availability "
        + ("n/a" if share is None else f"{share:.2f} %")
        + f" of business time\nwritten to {out} in {time.perf_counter() - started:.2f} s"
    )
    return 0


def cmd_alerts(args: argparse.Namespace) -> int:
    """The alert table; with --evaluate, an evaluation as of the latest poll first; with
    --deliver, a delivery round of the due events to the webhooks."""
    import pandas as pd

    from storemon_pipeline.engine.alerts import evaluate_alerts, read_alerts
    from storemon_pipeline.engine.db import database
    from storemon_pipeline.engine.delivery import (
        deliver_due_events,
        delivery_status,
        save_delivery_status,
    )
    from storemon_pipeline.engine.ingest import is_valid_store_id

    if args.store is not None and not is_valid_store_id(args.store):
        print(f"storemon alerts: {args.store!r} is not a store id the ingest accepts",
              file=sys.stderr)
        return 2
    settings = get_settings()
    if settings.shards > 1:
        print("storemon alerts: alerts are kept in one DuckDB file; with STOREMON_SHARDS > 1 "
              "they are not evaluated yet", file=sys.stderr)
        return 1

    connect = functools.partial(
        database, settings.duckdb_path, wait_seconds=args.wait, limits=settings.duckdb_limits
    )
    urls = settings.alert_webhook_urls
    if args.evaluate:
        with connect() as con:
            result = evaluate_alerts(
                con, min_down_minutes=settings.alert_min_down_minutes,
                default_timezone=DEFAULT_TIMEZONE,
            )
            save_delivery_status(con, settings.state_dir, len(urls))
        if result.as_of is None:
            print("no polls are loaded yet: nothing to evaluate")
        else:
            print(
                f"evaluated as of the latest poll {result.as_of.isoformat(sep=' ')} UTC "
                f"(at least {settings.alert_min_down_minutes:g} business minutes down): "
                f"{result.opened} opened, {result.resolved} resolved, {result.open} open"
            )
    if args.deliver:
        if not urls:
            print("storemon alerts: no webhook is set (STOREMON_ALERT_WEBHOOK_URLS)",
                  file=sys.stderr)
            return 1
        secret = settings.alert_secret.get_secret_value() if settings.alert_secret else None
        done = deliver_due_events(
            connect, settings.state_dir, urls, secret=secret,
            retry_max_hours=settings.alert_retry_max_hours,
        )
        print(
            f"delivery: posted {done.posted}, delivered {done.delivered}, failed "
            f"{done.failed}; {done.status.pending} pending, {done.status.dead} dead"
            + (f"; last error: {done.status.last_error}" if done.failed else "")
        )
    with connect() as con:
        alerts = read_alerts(con, "open" if args.open else None, args.store)
        outbox = delivery_status(con, len(urls))
    if outbox.pending or outbox.delivered or outbox.dead:
        print(
            f"events: {outbox.pending} pending, {outbox.delivered} delivered, {outbox.dead} "
            f"dead (given up) to {len(urls)} webhook(s)"
        )
    if alerts.empty:
        print("no open alerts" if args.open else "no alerts")
        return 0
    table = alerts[["alert_id", "store_id", "state", "down_since", "resolved_at"]].copy()
    table["business_minutes_down"] = alerts["business_minutes_rounded"].map(lambda m: f"{m:.2f}")
    for column in ("down_since", "resolved_at"):
        table[column] = table[column].map(
            lambda t: "" if pd.isna(t) else t.isoformat(sep=" ") + " UTC"
        )
    print(table.to_string(index=False))
    return 0


def _period_file_name(period: Period) -> str:
    if period.local:
        return period.name
    return f"{period.start:%Y%m%dT%H%M%S}-{period.end:%Y%m%dT%H%M%S}"


def cmd_demo(args: argparse.Namespace) -> int:
    """Ingest the sample data (once) and write a report: what the README's run command does."""
    status = cmd_ingest(argparse.Namespace(paths=[SAMPLE_DATA_DIR], wait=args.wait))
    return status or cmd_report(argparse.Namespace(as_of=None, out=None, wait=args.wait))


def cmd_generate(args: argparse.Namespace) -> int:
    from storemon_pipeline.tools.generate import build_sample, generate_dataset

    if args.sample:
        info = build_sample(progress=print)
    elif args.out is None:
        print("storemon generate: give --out DIR (or --sample)", file=sys.stderr)
        return 2
    else:
        info = generate_dataset(
            args.out, stores=args.stores, days=args.days, seed=args.seed,
            poll_files=args.poll_files, progress=print,
        )
    print(
        f"{info['polls']:,} polls of {info['stores']:,} stores "
        f"({info['inactive_share']:.1%} inactive), {info['bytes'] / 1e6:.1f} MB "
        f"in {info['seconds']:.1f} s"
    )
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    from storemon_pipeline.tools.bench import default_cache_dir, run_bench

    if args.chart is not None:
        from storemon_pipeline.tools.bench_chart import ChartError, describe, draw_chart

        try:
            summary = draw_chart(args.cache_dir or default_cache_dir(), args.chart)
        except ChartError as error:
            print(f"storemon bench --chart: {error}", file=sys.stderr)
            return 2
        print(describe(summary))
        return 0
    if args.shards:
        from storemon_pipeline.tools.bench_shards import run_shard_bench

        bars = run_shard_bench(
            args.shards, args.workers, scale=args.scale, cache_dir=args.cache_dir
        )
        return 0 if all(bar["passed"] for bar in bars) else 1

    from storemon_pipeline.tools.bench_chart import redraw

    results = run_bench(
        scale=args.scale, cache_dir=args.cache_dir, history_days=args.history_days
    )
    redraw(args.cache_dir or default_cache_dir())
    return 0 if all(r["passed"] for r in results if r["kind"] == "bar") else 1


def cmd_soak(args: argparse.Namespace) -> int:
    from storemon_pipeline.tools.soak import run_soak

    return run_soak(
        minutes=args.minutes, chaos=args.chaos, hour_seconds=args.hour_seconds,
        kill_every=args.kill_every, home=args.home,
    )


def cmd_up(args: argparse.Namespace) -> int:
    from storemon_pipeline.up import run_up

    return run_up(
        dagster_port=args.dagster_port, api_port=args.api_port, executor=args.executor,
        workers=args.workers,
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="storemon",
        description="Store uptime reports. State lives in $STOREMON_HOME (default ./var).",
    )
    commands = parser.add_subparsers(dest="command", required=True)

    ingest = commands.add_parser("ingest", help="load CSV files or folders of them")
    ingest.add_argument("paths", nargs="+", type=Path, help="CSV files (.csv, .csv.gz) or folders")
    ingest.set_defaults(func=cmd_ingest)

    settle = commands.add_parser(
        "settle",
        help="settle the local days that have ended, so that an SLA month reads them (the "
        "sla_days asset does it after every ingest run)",
    )
    settle.set_defaults(func=cmd_settle)

    report = commands.add_parser("report", help="write the uptime report CSV")
    report.add_argument("--as-of", type=_instant, help="report instant (default: latest poll)")
    report.add_argument("--out", type=Path, help="CSV path (default: <state>/reports/latest.csv)")
    report.set_defaults(func=cmd_report)

    history = commands.add_parser(
        "history", help="a store's rows in every report partition (read, not recomputed)"
    )
    history.add_argument("store_id")
    history.add_argument("--from", dest="since", type=_instant, help="first as-of to show")
    history.add_argument("--to", dest="until", type=_instant, help="last as-of to show")
    history.set_defaults(func=cmd_history)

    explain = commands.add_parser(
        "explain", help="how a store's numbers were made: its week, polls, windows and status"
    )
    explain.add_argument("store_id")
    explain.add_argument(
        "--as-of", type=_instant,
        help="report instant (default: the newest report partition's, else the latest poll)",
    )
    explain.add_argument("--json", action="store_true", help="the REST API's JSON instead")
    explain.set_defaults(func=cmd_explain)

    sla = commands.add_parser(
        "sla",
        help="availability, incidents and the target of every store over a period, as CSV",
    )
    sla.add_argument("--from", dest="since", type=_instant, help="period start (UTC instant)")
    sla.add_argument("--to", dest="until", type=_instant, help="period end (UTC instant)")
    sla.add_argument("--month", help="YYYY-MM: each store's local calendar month")
    sla.add_argument("--week", help="YYYY-Www: each store's local ISO week")
    sla.add_argument(
        "--target", type=float,
        help="availability to meet, in percent (default STOREMON_SLA_TARGET_PCT, 99.0)",
    )
    sla.add_argument("--store", action="append", help="only this store (repeat for more)")
    sla.add_argument(
        "--out", type=Path, help="CSV path (default: <state>/reports/sla-<period>.csv)"
    )
    sla.set_defaults(func=cmd_sla)

    alerts = commands.add_parser(
        "alerts", help="the alerts on stores that are down (open and resolved), newest first"
    )
    alerts.add_argument("--open", action="store_true", help="only the open alerts")
    alerts.add_argument("--store", help="only this store's alerts")
    alerts.add_argument(
        "--evaluate", action="store_true",
        help="evaluate the alerts as of the latest poll first (writes their events to the "
        "outbox)",
    )
    alerts.add_argument(
        "--deliver", action="store_true",
        help="post the due events to the webhooks (one round, as the sensor alert_deliveries "
        "does)",
    )
    alerts.set_defaults(func=cmd_alerts)

    demo = commands.add_parser("demo", help="ingest the sample data in data/ and write a report")
    demo.set_defaults(func=cmd_demo)

    generate = commands.add_parser("generate", help="make a realistic data set at any scale")
    generate.add_argument("--out", type=Path, help="folder for the generated CSV files")
    generate.add_argument(
        "--sample", action="store_true", help="rebuild the sample polls in data/ instead"
    )
    generate.add_argument("--stores", type=int, default=14_000)
    generate.add_argument("--days", type=int, default=8)
    generate.add_argument("--seed", type=int, default=0)
    generate.add_argument("--poll-files", type=int, default=1)
    generate.set_defaults(func=cmd_generate)

    from storemon_pipeline.tools.bench_chart import DEFAULT_CHART

    bench = commands.add_parser("bench", help="measure ingest and report against a floor")
    bench.add_argument("--scale", type=float, default=1.0, help="1 = ~14,000 stores, 1.85 M polls")
    bench.add_argument("--cache-dir", type=Path, help="where generated data sets are kept")
    bench.add_argument(
        "--history-days", type=int,
        help="poll the same stores for this many days (a live feed's history) and compare the "
        "report with the last 8-day run",
    )
    bench.add_argument(
        "--shards", type=int,
        help="measure N shards (their steps on --workers warm worker processes) against "
        "one file",
    )
    bench.add_argument("--workers", type=int, default=2, help="with --shards: steps at a time")
    bench.add_argument(
        "--chart", type=Path, nargs="?", const=DEFAULT_CHART, metavar="PATH",
        help="run nothing: draw time and peak memory per phase against the scale from the "
        f"cached 8-day results to this PNG (default: {DEFAULT_CHART}, the README's picture, "
        "from the current folder; needs the bench extra, matplotlib). Every bench run also "
        "redraws <cache>/bench.png when matplotlib is there",
    )
    bench.set_defaults(func=cmd_bench)

    soak = commands.add_parser(
        "soak", help="the product under a live feed and triggers, processes killed with --chaos"
    )
    soak.add_argument("--minutes", type=float, default=2.0)
    soak.add_argument("--chaos", action="store_true", help="SIGKILL a random process regularly")
    soak.add_argument("--hour-seconds", type=float, default=5.0,
                      help="real seconds per hour of the simulated feed")
    soak.add_argument("--kill-every", type=float, default=15.0, help="seconds between kills")
    soak.add_argument("--home", type=Path, help="state folder (default: a new temporary one)")
    soak.set_defaults(func=cmd_soak)

    reshard = commands.add_parser(
        "reshard", help="split the stores anew into N shard files (STOREMON_SHARDS)"
    )
    reshard.add_argument("shards", type=int, help="the new number of shards (1: one file)")
    reshard.set_defaults(func=cmd_reshard)

    up = commands.add_parser(
        "up",
        help="the whole product: ingest the sample if empty, then the Dagster UI and daemon and "
        "the REST API",
    )
    up.add_argument("--dagster-port", type=int, default=3000, help="Dagster UI port on 127.0.0.1")
    up.add_argument("--api-port", type=int, default=8000, help="REST API port on 127.0.0.1")
    up.add_argument(
        "--executor", choices=("in_process", "celery"),
        help="where run steps execute (default STOREMON_EXECUTOR, in_process); celery also "
        "starts Redis (unless STOREMON_REDIS_URL is set) and the workers",
    )
    up.add_argument(
        "--workers", type=int, default=2, help="Celery workers (with --executor celery)"
    )
    up.set_defaults(func=cmd_up)

    for sub in (ingest, settle, report, sla, alerts, demo):
        sub.add_argument(
            "--wait", type=float, default=60.0,
            help="seconds to wait for the DuckDB file while another process writes it",
        )
    return parser


def main(argv: list[str] | None = None) -> int:
    from storemon_pipeline.engine.db import ResourceLimitError

    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except ResourceLimitError as exc:
        print(f"storemon {args.command}: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
