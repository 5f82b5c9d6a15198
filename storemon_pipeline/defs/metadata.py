"""Helpers that turn engine figures into Dagster metadata, shared by the assets and checks."""

from __future__ import annotations

from datetime import datetime

import dagster as dg
import pandas as pd

from storemon_pipeline.engine.instants import epoch_seconds


def markdown_table(frame: pd.DataFrame) -> str:
    """A small frame as a markdown table (no optional dependency on `tabulate`)."""
    if frame.empty:
        return "_none_"
    header = "| " + " | ".join(map(str, frame.columns)) + " |"
    rule = "|" + "---|" * len(frame.columns)
    rows = [
        "| " + " | ".join(str(v).replace("|", "\\|") for v in row) + " |"
        for row in frame.itertuples(index=False)
    ]
    return "\n".join([header, rule, *rows])


def markdown(frame: pd.DataFrame) -> dg.MetadataValue:
    return dg.MetadataValue.md(markdown_table(frame))


def timestamp(instant: datetime) -> dg.MetadataValue:
    """A naive UTC instant of the engine as Dagster timestamp metadata."""
    return dg.MetadataValue.timestamp(epoch_seconds(instant))
