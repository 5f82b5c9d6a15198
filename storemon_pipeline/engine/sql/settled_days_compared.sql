-- The settled days of the stores and dates of sla_results (days computed again from the polls,
-- engine/settled.py: check_settled_days; checked_dates(local_date, period_id) names each
-- period's date) beside what that computation gives, as the temp table settled_days_compared:
-- business time, uptime and the inactive runs with business time (start, end, business time,
-- as one list per day) of each settled store-day, and whether they are the same.
CREATE OR REPLACE TEMP TABLE settled_days_compared AS
WITH computed_runs AS (
    SELECT period_id, store_key,
           list((incident_start_us, incident_end_us, business_us) ORDER BY incident_start_us)
               AS runs
    FROM sla_incidents
    GROUP BY ALL
),
settled_runs AS (
    SELECT store_key, local_date,
           list((start_us, end_us, business_us) ORDER BY start_us) AS runs
    FROM sla_day_downtime
    WHERE business_us > 0 AND local_date IN (SELECT local_date FROM checked_dates)
    GROUP BY ALL
),
computed AS (
    SELECT results.store_key, results.store_id, checked_dates.local_date, results.business_us,
           results.uptime_us, coalesce(computed_runs.runs, []) AS runs
    FROM sla_results AS results
    JOIN checked_dates USING (period_id)
    LEFT JOIN computed_runs USING (period_id, store_key)
)
SELECT
    computed.store_id,
    computed.local_date,
    settled.business_us AS settled_business_us,
    computed.business_us AS computed_business_us,
    settled.uptime_us AS settled_uptime_us,
    computed.uptime_us AS computed_uptime_us,
    len(coalesce(settled_runs.runs, [])) AS settled_incidents,
    len(computed.runs) AS computed_incidents,
    settled.business_us = computed.business_us
        AND settled.uptime_us = computed.uptime_us
        AND coalesce(settled_runs.runs, []) = computed.runs AS matches
FROM sla_days AS settled
JOIN computed USING (store_key, local_date)
LEFT JOIN settled_runs USING (store_key, local_date);
