"""The REST facade over Dagster: trigger reports, follow them, download them."""
