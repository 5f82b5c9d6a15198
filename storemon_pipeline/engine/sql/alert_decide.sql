-- What an evaluation as of T decides (docs/semantics.md §2.18), as the temp table
-- alert_decisions(alert_id, action, store_key, store_id, down_since, resolved_at, business_us):
-- 'opened' for a store inactive at T whose run covers at least $threshold_us (and some)
-- business time, without an open alert and not overlapping a resolved one; 'updated' for an
-- open alert whose store is still inactive at T (its run's start and business time as they
-- are now, whatever their length); 'resolved' for an open alert whose store is active at T
-- (or no longer has polls). Needs alert_runs (engine/alerts.py) and the table alerts.

CREATE OR REPLACE TEMP TABLE alert_decisions AS
WITH open_alerts AS (
    SELECT * FROM alerts WHERE state = 'open'
),
resolved_until AS (
    -- a run that starts before a resolved alert of its store ended is that alert's run
    SELECT store_id, max(resolved_at) AS resolved_until
    FROM alerts
    WHERE state = 'resolved'
    GROUP BY store_id
),
runs AS (
    SELECT
        alert_runs.*,
        make_timestamp(down_start_us) AS down_start,
        make_timestamp(down_end_us) AS down_end
    FROM alert_runs
),
updated AS (
    SELECT
        open_alerts.alert_id,
        'updated' AS action,
        runs.store_key,
        runs.store_id,
        runs.down_start AS down_since,
        NULL::TIMESTAMP AS resolved_at,
        runs.business_us
    FROM open_alerts
    JOIN runs USING (store_id)
    WHERE NOT runs.active_at_as_of
),
resolved AS (
    -- the run ends where the active run current at T starts (its first poll's span start)
    SELECT
        open_alerts.alert_id,
        'resolved' AS action,
        open_alerts.store_key,
        open_alerts.store_id,
        coalesce(runs.down_start, open_alerts.down_since) AS down_since,
        CASE WHEN runs.store_id IS NULL THEN $as_of::TIMESTAMP
             ELSE greatest(runs.down_end, coalesce(runs.down_start, open_alerts.down_since))
        END AS resolved_at,
        CASE WHEN runs.down_start IS NOT NULL THEN runs.business_us
             ELSE open_alerts.business_us_down END AS business_us
    FROM open_alerts
    LEFT JOIN runs USING (store_id)
    WHERE runs.store_id IS NULL OR runs.active_at_as_of
),
candidates AS (
    SELECT
        left(md5(runs.store_id || '@' || runs.down_start_us::VARCHAR), 16) AS alert_id,
        'opened' AS action,
        runs.store_key,
        runs.store_id,
        runs.down_start AS down_since,
        NULL::TIMESTAMP AS resolved_at,
        runs.business_us,
        resolved_until.resolved_until
    FROM runs
    LEFT JOIN resolved_until USING (store_id)
    WHERE NOT runs.active_at_as_of
      AND runs.business_us > 0
      AND runs.business_us >= $threshold_us
      AND runs.store_id NOT IN (SELECT store_id FROM open_alerts)
),
opened AS (
    SELECT * EXCLUDE (resolved_until)
    FROM candidates
    WHERE (resolved_until IS NULL OR down_since >= resolved_until)
      AND alert_id NOT IN (SELECT alert_id FROM alerts)
)
SELECT * FROM updated
UNION ALL
SELECT * FROM resolved
UNION ALL
SELECT * FROM opened;
