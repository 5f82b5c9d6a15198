-- Each store's inactive run as of T (docs/semantics.md §2.18), as the temp table
-- alert_runs_pass(store_key, store_id, active_at_as_of, down_start_us, down_end_us,
-- business_us, exact): the run current at T when the store is inactive at T (it ends at T),
-- else the inactive run just before the active run current at T (down_start_us NULL when
-- there is none). Runs are read as sla_incidents.sql reads them: consecutive polls of the
-- sequence the store uses at T with the same status own one run, from the span start of its
-- first poll; nothing before the store's first poll counts (a run of its first poll starts
-- there). exact: the run's start is at or after $exact_from_us, from where the timelines are
-- exact (engine/report.py: build_timelines), or the store's first poll is.
-- Needs report_stores, first_in_hours, status_runs and business_cumulative
-- (report_timelines.sql), built as of $as_of alone.

CREATE OR REPLACE TEMP TABLE alert_runs_pass AS
WITH store_sequences AS (
    -- the sequence each store uses at T (§2.7)
    SELECT
        report_stores.store_key,
        report_stores.store_id,
        epoch_us(report_stores.first_poll) AS first_poll_us,
        NOT coalesce(first_in_hours.first_in_hours <= $as_of::TIMESTAMP, false) AS all_polls,
        $as_of::TIMESTAMP AS as_of
    FROM report_stores
    LEFT JOIN first_in_hours USING (store_key)
),
runs_with_previous AS (
    SELECT
        status_runs.*,
        lag(run_start_us) OVER (PARTITION BY store_key, all_polls ORDER BY first_ts)
            AS previous_run_start_us
    FROM status_runs
),
current_runs AS (
    -- the run of the last usable poll owns everything up to T
    SELECT
        store_sequences.*,
        status_runs.is_active,
        status_runs.run_start_us,
        status_runs.previous_run_start_us
    FROM store_sequences
    ASOF JOIN runs_with_previous AS status_runs
        ON status_runs.store_key = store_sequences.store_key
        AND status_runs.all_polls = store_sequences.all_polls
        AND status_runs.first_ts <= store_sequences.as_of
),
down_runs AS (
    SELECT
        store_key,
        store_id,
        first_poll_us,
        is_active AS active_at_as_of,
        CASE WHEN is_active THEN previous_run_start_us ELSE run_start_us END AS raw_start_us,
        CASE WHEN is_active THEN run_start_us ELSE epoch_us(as_of) END AS raw_end_us,
        -- the earliest instant this pass must know exactly
        CASE WHEN is_active THEN coalesce(previous_run_start_us, run_start_us)
             ELSE run_start_us END AS needed_from_us
    FROM current_runs
),
clamped_runs AS (
    SELECT
        store_key,
        store_id,
        active_at_as_of,
        -- (greatest() skips a NULL: no inactive run stays NULL)
        CASE WHEN raw_start_us IS NOT NULL THEN greatest(raw_start_us, first_poll_us) END
            AS down_start_us,
        greatest(raw_end_us, first_poll_us) AS down_end_us,
        needed_from_us >= $exact_from_us OR first_poll_us >= $exact_from_us AS exact
    FROM down_runs
),
run_bounds AS (
    SELECT store_key, true AS is_start, down_start_us AS x_us
    FROM clamped_runs WHERE down_start_us IS NOT NULL
    UNION ALL
    SELECT store_key, false, down_end_us
    FROM clamped_runs WHERE down_start_us IS NOT NULL
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
run_business AS (
    SELECT
        store_key,
        (max(business_before_us) FILTER (WHERE NOT is_start)
            - max(business_before_us) FILTER (WHERE is_start))::BIGINT AS business_us
    FROM bound_readings
    GROUP BY store_key
)
SELECT
    clamped_runs.*,
    coalesce(run_business.business_us, 0)::BIGINT AS business_us
FROM clamped_runs
LEFT JOIN run_business USING (store_key);
