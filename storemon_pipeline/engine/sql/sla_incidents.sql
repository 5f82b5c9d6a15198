-- The incidents of every store's period (docs/semantics.md §2.17), as the temp table
-- sla_incidents(period_id, store_key, incident_start_us, incident_end_us, business_us): the
-- maximal intervals of [period_start, period_end) in which the interpolated status (§2.8) is
-- inactive, that overlap business time; business_us is the business time each covers.
-- Needs sla_sequences (sla_values.sql), status_runs and business_cumulative
-- (report_timelines.sql), sla_settled_prefix (sla_settled_prefix.sql) and sla_day_downtime.
-- First sla_down_pieces: the inactive runs of the part computed from the polls
-- ([counted_from, period_end)), cut to it, with the business time each covers, even none (the
-- settled days keep theirs the same way: engine/settled.py); then the pieces of the settled
-- days and of the polls that follow each other are joined into incidents.

CREATE OR REPLACE TEMP TABLE sla_down_pieces AS
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
SELECT * FROM incident_readings;

CREATE OR REPLACE TEMP TABLE sla_incidents AS
WITH settled_pieces AS (
    SELECT
        prefix.period_id,
        prefix.store_key,
        downtime.start_us AS incident_start_us,
        downtime.end_us AS incident_end_us,
        downtime.business_us
    FROM sla_settled_prefix AS prefix
    JOIN sla_day_downtime AS downtime
        ON downtime.store_key = prefix.store_key
        AND downtime.local_date BETWEEN prefix.first_date AND prefix.last_date
),
pieces AS (
    SELECT * FROM settled_pieces
    UNION ALL
    SELECT * FROM sla_down_pieces
),
continued AS (
    -- a piece that starts where the one before it ended is the same run of inactive status
    SELECT
        *,
        incident_start_us IS DISTINCT FROM lag(incident_end_us) OVER (
            PARTITION BY period_id, store_key ORDER BY incident_start_us
        ) AS starts_incident
    FROM pieces
),
numbered AS (
    SELECT
        *,
        sum(starts_incident::INTEGER) OVER (
            PARTITION BY period_id, store_key ORDER BY incident_start_us
            ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW
        ) AS incident_number
    FROM continued
)
SELECT
    period_id,
    store_key,
    min(incident_start_us) AS incident_start_us,
    max(incident_end_us) AS incident_end_us,
    sum(business_us)::BIGINT AS business_us
FROM numbered
GROUP BY period_id, store_key, incident_number
-- a run that covers no business time (the store was closed all through) is no incident
HAVING sum(business_us) > 0;
