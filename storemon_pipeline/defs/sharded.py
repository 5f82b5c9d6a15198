"""The ingest and the report with several shards (STOREMON_SHARDS > 1): graph-backed assets of
the same keys, with one step per shard and one step that assembles.

A static fan-out (one op per shard, named after it) rather than dynamic outputs: the number of
shards is fixed for a code location, and each shard's step then has a name and a pool of its
own (``shard_<k>``, limit 1), so two steps never write one shard file at once, across all runs.
Under the Celery executor the shard steps run on any worker; in-process, one after another.
"""


import time
from datetime import datetime
from pathlib import Path

import dagster as dg

from storemon_pipeline.defs.assets import (
    INGEST_CHECK_SPECS,
    POLLS_FRESHNESS,
    IngestConfig,
    business_windows,
    finish_report,
    ingest_check_results,
    log_file_result,
    record_ingest,
    settlement_metadata,
)
from storemon_pipeline.defs.keys import (
    BUSINESS_HOURS,
    POLLS,
    QUARANTINE,
    SLA_DAYS,
    SPECIAL_HOURS,
    TIMEZONES,
)
from storemon_pipeline.defs.partitions import report_partitions
from storemon_pipeline.defs.resources import StoremonState
from storemon_pipeline.engine.db import ensure_spill_room
from storemon_pipeline.engine.history import partition_hour
from storemon_pipeline.engine.ingest import StagedFile, csv_files, merge_shard_results
from storemon_pipeline.engine.sharded import (
    ShardIngest,
    ShardSettlement,
    assemble_report,
    finish_ingest,
    ingest_shard,
    remove_staged,
    report_plan,
    report_shard,
    settle_shard,
    shard_settlements,
    stage_files,
)
from storemon_pipeline.engine.state import read_latest_poll, report_csv_path

# A shard step that died with its worker (or found its file locked) is run again: it loads or
# computes in one transaction per file, so running it twice counts nothing twice.
SHARD_RETRY = dg.RetryPolicy(max_retries=2, delay=5)
INGEST_OUTPUTS = {
    "polls": POLLS,
    "business_hours": BUSINESS_HOURS,
    "special_hours": SPECIAL_HOURS,
    "timezones": TIMEZONES,
    "quarantine": QUARANTINE,
}
INGEST_CHECK_OUTPUTS = [spec.get_python_identifier() for spec in INGEST_CHECK_SPECS]
# a step per shard settles its stores' local days (engine/settled.py) after its ingest
SETTLED_OUTPUT = "sla_days"


def shard_pool(index: int) -> str:
    return f"shard_{index}"


# --- ingest ------------------------------------------------------------------------------------


@dg.op(
    out=dg.DynamicOut(str),
    description="The CSV files to load (config: paths; default data/ + incoming/), one by one.",
)
def ingest_files(config: IngestConfig, storemon: StoremonState):
    paths = [Path(p) for p in config.paths] or storemon.default_ingest_paths()
    for number, path in enumerate(csv_files(paths)):
        yield dg.DynamicOutput(str(path), mapping_key=f"file_{number}")


@dg.op(
    name="stage_file",
    retry_policy=SHARD_RETRY,
    description="Check one file once and leave its rows split by shard, for the shards' steps.",
)
def stage_one_file(
    context: dg.OpExecutionContext, storemon: StoremonState, path: str
) -> StagedFile:
    order = int(context.get_mapping_key().removeprefix("file_"))
    return stage_files(storemon.settings.sharded, [Path(path)], first=order)[0]


def _shard_step(name: str, index: int, description: str):
    """The decorator of a shard's step: its name, its shard's pool, retried."""
    return dg.op(
        name=f"{name}_{index}", pool=shard_pool(index), retry_policy=SHARD_RETRY,
        description=description,
    )


def _ingest_shard_op(index: int) -> dg.OpDefinition:
    @_shard_step(
        "ingest_shard", index, f"Load shard {index}'s rows of the staged files into its file."
    )
    def ingest_one_shard(
        context: dg.OpExecutionContext, staged: list[StagedFile], storemon: StoremonState
    ) -> ShardIngest:
        return ingest_shard(
            storemon.settings.sharded, index, _in_file_order(staged),
            progress=lambda result: context.log.info(result.summary()),
        )

    return ingest_one_shard


def _settle_shard_op(index: int) -> dg.OpDefinition:
    @_shard_step(
        "settle_shard", index, f"Settle shard {index}'s local days that can be, once loaded."
    )
    def settle_one_shard(
        context: dg.OpExecutionContext, loaded: ShardIngest, storemon: StoremonState
    ) -> ShardSettlement:
        settled = settle_shard(storemon.settings.sharded, index)
        context.log.info(
            f"shard {index}: {settled.settlement.days} store-day(s) settled in "
            f"{settled.seconds:.2f} s"
        )
        return settled

    return settle_one_shard


@dg.op(
    out=dg.Out(dg.Nothing),
    description="What the shards settled, as one settlement: the sla_days asset's metadata.",
)
def assemble_settlement(settled: list[ShardSettlement]) -> dg.Output[None]:
    merged = shard_settlements(settled)
    return dg.Output(None, metadata=settlement_metadata(merged.settlement, merged.seconds))


def _in_file_order(staged: list[StagedFile]) -> list[StagedFile]:
    """The staged files in the order they were listed (a later snapshot wins)."""
    return sorted(staged, key=lambda file: file.order)


@dg.op(
    out={name: dg.Out(dg.Nothing) for name in [*INGEST_OUTPUTS, *INGEST_CHECK_OUTPUTS]},
    description="What the shards loaded, as one ingest: the newest poll, the report partitions "
    "of the hours the polls fall in, the metadata.",
)
def assemble_ingest(
    context: dg.OpExecutionContext,
    storemon: StoremonState,
    parts: list[ShardIngest],
    staged: list[StagedFile],
):
    previous_latest = read_latest_poll(storemon.state_dir)
    results = merge_shard_results([part.results for part in parts])
    for result in results:
        log_file_result(context, result)
    newest_poll, _ = finish_ingest(storemon.settings.sharded)
    remove_staged(staged)
    expired = sum(part.expired for part in parts)
    with storemon.connect() as con:
        metadata = record_ingest(
            context.instance, con, results, expired, previous_latest, newest_poll
        )
    for key, values in metadata.items():
        yield dg.Output(None, output_name=key.path[-1], metadata=values)
    yield from ingest_check_results(results, storemon.rejected_share_limit)


def build_sharded_ingest(shards: int) -> dg.AssetsDefinition:
    shard_ops = [_ingest_shard_op(k) for k in range(shards)]
    settle_ops = [_settle_shard_op(k) for k in range(shards)]

    @dg.graph_multi_asset(
        name="ingest",
        outs={
            **{
                name: dg.AssetOut(
                    key=key, group_name="ingest", kinds={"duckdb"},
                    freshness_policy=POLLS_FRESHNESS if key == POLLS else None,
                )
                for name, key in INGEST_OUTPUTS.items()
            },
            SETTLED_OUTPUT: dg.AssetOut(
                key=SLA_DAYS, group_name="sla", kinds={"duckdb"},
                description="Each store's local days, settled by a step per shard after its "
                "ingest "
                "(see the one-file asset of the same key).",
            ),
        },
        check_specs=INGEST_CHECK_SPECS,
        config=dg.ConfigMapping(
            config_fn=lambda config: {"ingest_files": {"config": config}},
            config_schema=IngestConfig.to_config_schema(),
        ),
    )
    def ingest():
        staged = ingest_files().map(stage_one_file).collect()
        parts = [shard_op(staged) for shard_op in shard_ops]
        assembled = assemble_ingest(parts, staged)
        settled = [settle_op(part) for settle_op, part in zip(settle_ops, parts, strict=True)]
        return {**assembled._asdict(), SETTLED_OUTPUT: assemble_settlement(settled)}

    return ingest


# --- report ------------------------------------------------------------------------------------


@dg.op(
    ins={"windows": dg.In(dg.Nothing)},
    description="The as-of of each partition of the run, from the newest poll of all shards.",
)
def plan_report(
    context: dg.OpExecutionContext, storemon: StoremonState
) -> dict[datetime, datetime]:
    ensure_spill_room(storemon.state_dir, storemon.settings.duckdb_limits)
    hours = [partition_hour(k) for k in context.partition_keys]
    return report_plan(storemon.settings.sharded, hours)


def _report_shard_op(index: int) -> dg.OpDefinition:
    @_shard_step("report_shard", index, f"Shard {index}'s rows of the reports, as Parquet.")
    def report_one_shard(
        context: dg.OpExecutionContext, plan: dict[datetime, datetime], storemon: StoremonState
    ) -> list[str]:
        started = time.perf_counter()
        files = report_shard(storemon.settings.sharded, index, context.run_id, plan)
        context.log.info(
            f"shard {index}: {len(plan)} partition(s) in {time.perf_counter() - started:.2f} s"
        )
        return [str(file) for file in files]

    return report_one_shard


@dg.op(description="The shards' rows as one report: history rows, the CSV and its sidecar.")
def assemble_shard_reports(
    context: dg.OpExecutionContext,
    storemon: StoremonState,
    plan: dict[datetime, datetime],
    parts: list[list[str]],
) -> dg.Output[None]:
    started = time.perf_counter()
    report = assemble_report(
        storemon.settings.sharded,
        context.run_id,
        [Path(file) for part in parts for file in part],
        plan,
        report_csv_path(storemon.reports_dir, context.run_id),
    )
    keys = sorted(context.partition_keys)
    done = finish_report(context, storemon, keys, report, time.perf_counter() - started)
    return dg.Output(None, metadata=done.metadata)


def build_sharded_report(shards: int) -> dg.AssetsDefinition:
    shard_ops = [_report_shard_op(k) for k in range(shards)]

    @dg.graph_asset(
        name="uptime_report",
        group_name="reports",
        partitions_def=report_partitions,
        backfill_policy=dg.BackfillPolicy.single_run(),
        kinds={"duckdb", "csv"},
        ins={"windows": dg.AssetIn(business_windows.key, dagster_type=dg.Nothing)},
        description="The uptime/downtime report per store for the last hour, day and week, one "
        "step per shard (see the one-file asset of the same key).",
    )
    def uptime_report(windows):
        plan = plan_report(windows)
        return assemble_shard_reports(plan, [shard_op(plan) for shard_op in shard_ops])

    return uptime_report
