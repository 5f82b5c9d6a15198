-- The incidents of every store's period (docs/semantics.md §2.17), as the temp table
-- sla_incidents(period_id, store_key, incident_start_us, incident_end_us, business_us): the
-- maximal intervals of [period_start, period_end) in which the interpolated status (§2.8) is
-- inactive, that overlap business time; business_us is the business time each covers.
-- Needs sla_sequences (sla_values.sql), status_runs and business_cumulative
-- (report_timelines.sql).

CREATE OR REPLACE TEMP TABLE sla_incidents AS
WITH last_runs AS (
    -- the run of the period's last usable poll (its first poll at or before A) owns everything
    -- up to A: runs of later polls are not used
    SELECT
        sla_sequences.period_id,
        sla_sequences.store_key,
        sla_sequences.all_polls,
        sla_sequences.start_us,
        sla_sequences.end_us,
        status_runs.first_ts AS last_run_ts
    FROM sla_sequences
    ASOF JOIN status_runs
        ON status_runs.store_key = sla_sequences.store_key
        AND status_runs.all_polls = sla_sequences.all_polls
        AND status_runs.first_ts <= sla_sequences.as_of
    WHERE sla_sequences.end_us > sla_sequences.start_us
),
down_runs AS (
    -- the inactive runs of each period's sequence, cut to the period
    SELECT
        last_runs.period_id,
        last_runs.store_key,
        greatest(status_runs.run_start_us, last_runs.start_us) AS incident_start_us,
        least(
            CASE WHEN status_runs.first_ts = last_runs.last_run_ts THEN last_runs.end_us
                 ELSE status_runs.run_end_us END,
            last_runs.end_us
        ) AS incident_end_us
    FROM last_runs
    JOIN status_runs
        ON status_runs.store_key = last_runs.store_key
        AND status_runs.all_polls = last_runs.all_polls
        AND status_runs.first_ts <= last_runs.last_run_ts
        AND NOT status_runs.is_active
        AND status_runs.run_start_us < last_runs.end_us
        AND (status_runs.first_ts = last_runs.last_run_ts
             OR status_runs.run_end_us > last_runs.start_us)
),
run_bounds AS (
    SELECT period_id, store_key, incident_start_us, incident_end_us, true AS is_start,
           incident_start_us AS x_us
    FROM down_runs
    UNION ALL
    SELECT period_id, store_key, incident_start_us, incident_end_us, false, incident_end_us
    FROM down_runs
),
bound_readings AS (
    -- C(x) at both ends of each run
    SELECT
        run_bounds.*,
        cumulative_at(
            business_cumulative.before_us,
            business_cumulative.start_us,
            business_cumulative.end_us,
            run_bounds.x_us
        ) AS business_before_us
    FROM run_bounds
    ASOF LEFT JOIN business_cumulative
        ON business_cumulative.store_key = run_bounds.store_key
        AND business_cumulative.start_us <= run_bounds.x_us
),
incident_readings AS (
    SELECT
        period_id,
        store_key,
        incident_start_us,
        incident_end_us,
        (max(business_before_us) FILTER (WHERE NOT is_start)
            - max(business_before_us) FILTER (WHERE is_start))::BIGINT AS business_us
    FROM bound_readings
    GROUP BY period_id, store_key, incident_start_us, incident_end_us
)
SELECT *
FROM incident_readings
-- a run that covers no business time (the store was closed all through) is no incident
WHERE business_us > 0;
