-- The rows of report_results of the partitions in saved_partitions(partition_hour, as_of),
-- into the history (after history_save.sql or history_revise.sql made room for them).
INSERT INTO history.uptime_report
SELECT
    saved_partitions.partition_hour,
    report_results.as_of,
    report_results.store_id,
    report_results.uptime_hour_us,
    report_results.uptime_day_us,
    report_results.uptime_week_us,
    report_results.business_hour_us,
    report_results.business_day_us,
    report_results.business_week_us
FROM report_results
JOIN saved_partitions USING (as_of);
