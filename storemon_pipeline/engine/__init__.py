"""The storemon engine: plain functions over a DuckDB connection, and their SQL.

No Dagster here: the CLI, the Dagster assets and the tests all call these functions.
"""
