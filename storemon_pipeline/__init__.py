"""storemon engine: CSV feeds -> DuckDB -> per-store uptime reports."""
