-- After a revision: each revised partition's totals summed again from its rows, and when and
-- by which run it was revised.
UPDATE history.uptime_report_partitions AS stored
SET stores = partition_totals.stores,
    uptime_day_us = partition_totals.uptime_day_us,
    business_day_us = partition_totals.business_day_us,
    uptime_week_us = partition_totals.uptime_week_us,
    business_week_us = partition_totals.business_week_us,
    revised_at = $revised_at,
    revised_run_id = $run_id
FROM (
    SELECT
        partition_hour,
        count(*) AS stores,
        sum(uptime_day_us) AS uptime_day_us,
        sum(business_day_us) AS business_day_us,
        sum(uptime_week_us) AS uptime_week_us,
        sum(business_week_us) AS business_week_us
    FROM history.uptime_report
    WHERE partition_hour IN (SELECT partition_hour FROM saved_partitions)
    GROUP BY partition_hour
) AS partition_totals
WHERE stored.partition_hour = partition_totals.partition_hour;
