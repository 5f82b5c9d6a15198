"""Dagster wiring of the storemon engine; `storemon_pipeline.definitions` assembles it."""
