"""Helpers for the end-to-end tests: real Dagster and API processes on loopback."""
