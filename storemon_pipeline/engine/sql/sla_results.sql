-- One row per store and period (docs/semantics.md §2.17), as the temp table sla_results:
-- business time, uptime and downtime in microseconds (uptime + downtime = business time
-- exactly), the incidents (count, longest, their total) and the availability; whether it meets
-- a target is set by sla_target.sql. From sla_values (sla_values.sql) and sla_incidents
-- (sla_incidents.sql).
CREATE OR REPLACE TEMP TABLE sla_results AS
WITH incident_totals AS (
    SELECT
        period_id,
        store_key,
        count(*) AS incidents,
        max(business_us) AS longest_incident_us,
        sum(business_us)::BIGINT AS incident_us
    FROM sla_incidents
    GROUP BY period_id, store_key
)
SELECT
    sla_values.period_id,
    sla_values.store_key,
    sla_values.store_id,
    sla_values.period_start,
    sla_values.period_end,
    sla_values.business_us,
    sla_values.uptime_us,
    sla_values.business_us - sla_values.uptime_us AS downtime_us,
    coalesce(incident_totals.incidents, 0) AS incidents,
    coalesce(incident_totals.longest_incident_us, 0) AS longest_incident_us,
    coalesce(incident_totals.incident_us, 0) AS incident_us,
    CASE WHEN sla_values.business_us > 0
         THEN 100 * sla_values.uptime_us / sla_values.business_us END AS availability_pct,
    NULL::BOOLEAN AS target_met
FROM sla_values
LEFT JOIN incident_totals USING (period_id, store_key);
