"""REST facade over Dagster (issue 4)."""
