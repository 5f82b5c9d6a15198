-- A saved period's figures (saved_period_rows: store_id, business_us, uptime_us, downtime_us)
-- beside the sums of its local days in sla_results (every period of sla_results is one of its
-- days, as the period saw them), as the temp table sla_days_compared; a store the days do not
-- report has empty sums.
CREATE OR REPLACE TEMP TABLE sla_days_compared AS
WITH day_sums AS (
    SELECT
        store_id,
        sum(business_us)::BIGINT AS business_us,
        sum(uptime_us)::BIGINT AS uptime_us,
        sum(downtime_us)::BIGINT AS downtime_us
    FROM sla_results
    GROUP BY store_id
)
SELECT
    saved.store_id,
    saved.business_us AS period_business_us,
    day_sums.business_us AS days_business_us,
    saved.uptime_us AS period_uptime_us,
    day_sums.uptime_us AS days_uptime_us,
    saved.downtime_us AS period_downtime_us,
    day_sums.downtime_us AS days_downtime_us
FROM saved_period_rows AS saved
LEFT JOIN day_sums ON day_sums.store_id = saved.store_id::VARCHAR;
