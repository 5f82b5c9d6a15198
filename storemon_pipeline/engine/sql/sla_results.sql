-- One row per store and period (docs/semantics.md §2.17), as the temp table sla_results:
-- business time, uptime and downtime in microseconds (uptime + downtime = business time
-- exactly), the incidents (count, longest, their total) and the availability; whether it meets
-- a target is set by sla_target.sql. From sla_values (sla_values.sql: the part computed from
-- the polls), sla_settled_prefix (sla_settled_prefix.sql: the settled days before it) and
-- sla_incidents (sla_incidents.sql).
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
),
period_values AS (
    SELECT
        sla_values.period_id,
        sla_values.store_key,
        sla_values.store_id,
        sla_values.period_start,
        sla_values.period_end,
        (sla_values.business_us + coalesce(prefix.business_us, 0))::BIGINT AS business_us,
        (sla_values.uptime_us + coalesce(prefix.uptime_us, 0))::BIGINT AS uptime_us
    FROM sla_values
    LEFT JOIN sla_settled_prefix AS prefix USING (period_id, store_key)
)
SELECT
    period_values.period_id,
    period_values.store_key,
    period_values.store_id,
    period_values.period_start,
    period_values.period_end,
    period_values.business_us,
    period_values.uptime_us,
    period_values.business_us - period_values.uptime_us AS downtime_us,
    coalesce(incident_totals.incidents, 0) AS incidents,
    coalesce(incident_totals.longest_incident_us, 0) AS longest_incident_us,
    coalesce(incident_totals.incident_us, 0) AS incident_us,
    CASE WHEN period_values.business_us > 0
         THEN 100 * period_values.uptime_us / period_values.business_us END AS availability_pct,
    NULL::BOOLEAN AS target_met
FROM period_values
LEFT JOIN incident_totals USING (period_id, store_key);
