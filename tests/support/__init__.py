"""Helpers of the tests: the brute-force oracle, and real processes (Dagster, uvicorn, Chromium)."""
