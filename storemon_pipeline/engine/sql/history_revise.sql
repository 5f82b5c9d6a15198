-- Replace the rows of the stores in revised_stores(store_id) in the stored partitions of
-- revised_partitions(partition_hour, as_of) with their reports in report_results, computed at
-- each partition's stored as-of; then each partition's totals from its rows.
DELETE FROM history.uptime_report
WHERE partition_hour IN (SELECT partition_hour FROM revised_partitions)
  AND store_id IN (SELECT store_id FROM revised_stores);

INSERT INTO history.uptime_report
SELECT
    revised_partitions.partition_hour,
    report_results.as_of,
    report_results.store_id,
    report_results.uptime_hour_us,
    report_results.uptime_day_us,
    report_results.uptime_week_us,
    report_results.business_hour_us,
    report_results.business_day_us,
    report_results.business_week_us
FROM report_results
JOIN revised_partitions USING (as_of);

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
    WHERE partition_hour IN (SELECT partition_hour FROM revised_partitions)
    GROUP BY partition_hour
) AS partition_totals
WHERE stored.partition_hour = partition_totals.partition_hour;
