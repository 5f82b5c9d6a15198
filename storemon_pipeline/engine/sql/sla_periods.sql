-- Every store's periods in UTC (docs/semantics.md §2.17), as the temp table sla_store_periods.
-- Inputs (temp tables):
--   sla_period_specs(period_id, period_from, period_to, is_local, as_of_at, as_of_local)  the
--       periods asked for: UTC instants, or (is_local) wall-clock readings that every store
--       reads in its own zone; as_of_at (NULL: the period's end) is the instant computed as of,
--       in UTC, or (as_of_local) a wall-clock reading converted like the bounds
--   report_stores(store_key, store_id, first_poll)                  the stores asked for
--   zone_offsets(timezone, valid_from, valid_to, utc_offset_sec)    covering the local periods
-- A local bound becomes the first instant at which the store's wall clock reads it or later:
-- the rule of §2.6, as business_windows.sql applies it to window boundaries.
-- Each period is computed as of A = min(as_of_at or its end, $latest_poll): the polls up to A
-- are used, nothing after min(end, A) is counted, and a store is in a period when it has a poll
-- at or before A (§2.3).
CREATE OR REPLACE TEMP TABLE sla_store_periods AS
WITH store_zones AS (
    -- a store without a valid zone is in the default zone
    SELECT report_stores.store_key, report_stores.store_id, report_stores.first_poll,
           coalesce(timezones.timezone, $default_timezone) AS timezone
    FROM report_stores
    LEFT JOIN timezones USING (store_id)
),
zones_in_use AS (
    SELECT DISTINCT timezone FROM store_zones
),
wall_clock_bounds AS (
    SELECT DISTINCT zones_in_use.timezone, bounds.local_time
    FROM zones_in_use
    CROSS JOIN (
        SELECT period_from AS local_time FROM sla_period_specs WHERE is_local
        UNION
        SELECT period_to FROM sla_period_specs WHERE is_local
        UNION
        SELECT as_of_at FROM sla_period_specs WHERE as_of_local
    ) AS bounds
),
utc_bounds AS (
    -- within each piece of constant offset: max(piece start, local_time - offset), if still
    -- inside the piece; the earliest over the pieces
    SELECT
        bounds.timezone,
        bounds.local_time,
        min(greatest(
            offsets.valid_from,
            bounds.local_time - to_seconds(offsets.utc_offset_sec)
        )) AS utc_time
    FROM wall_clock_bounds AS bounds
    JOIN zone_offsets AS offsets
        ON offsets.timezone = bounds.timezone
        AND bounds.local_time - to_seconds(offsets.utc_offset_sec) < offsets.valid_to
    GROUP BY bounds.timezone, bounds.local_time
),
zone_periods AS (
    -- every period in every zone in use, in UTC (a UTC period is the same in each): a few rows
    -- per zone, so that each store only meets its zone's
    SELECT
        zones_in_use.timezone,
        specs.period_id,
        CASE WHEN specs.is_local THEN period_starts.utc_time ELSE specs.period_from END
            AS period_start,
        CASE WHEN specs.is_local THEN period_ends.utc_time ELSE specs.period_to END
            AS period_to,
        CASE WHEN specs.as_of_local THEN as_of_bounds.utc_time ELSE specs.as_of_at END
            AS as_of_at
    FROM zones_in_use
    CROSS JOIN sla_period_specs AS specs
    LEFT JOIN utc_bounds AS period_starts
        ON period_starts.timezone = zones_in_use.timezone
        AND period_starts.local_time = specs.period_from
    LEFT JOIN utc_bounds AS period_ends
        ON period_ends.timezone = zones_in_use.timezone
        AND period_ends.local_time = specs.period_to
    LEFT JOIN utc_bounds AS as_of_bounds
        ON as_of_bounds.timezone = zones_in_use.timezone
        AND as_of_bounds.local_time = specs.as_of_at
),
store_periods AS (
    SELECT
        zone_periods.period_id,
        store_zones.store_key,
        store_zones.store_id,
        store_zones.first_poll,
        zone_periods.period_start,
        zone_periods.period_to,
        zone_periods.as_of_at
    FROM store_zones
    JOIN zone_periods USING (timezone)
),
cut_periods AS (
    SELECT
        store_periods.*,
        least(coalesce(as_of_at, period_to), $latest_poll::TIMESTAMP) AS as_of
    FROM store_periods
)
SELECT
    period_id,
    store_key,
    store_id,
    period_start,
    period_to,
    as_of,
    -- what is counted: [period_start, period_end), empty when the as-of is before the start
    greatest(period_start, least(period_to, as_of)) AS period_end
FROM cut_periods
WHERE first_poll <= as_of
  AND period_to > period_start;
