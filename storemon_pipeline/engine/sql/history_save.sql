-- Replace the history of the partitions in saved_partitions(partition_hour, as_of) with their
-- reports in report_results: their rows go, their totals are those of the new report (the new
-- rows follow with history_insert_rows.sql).
DELETE FROM history.uptime_report
WHERE partition_hour IN (SELECT partition_hour FROM saved_partitions);

DELETE FROM history.uptime_report_partitions
WHERE partition_hour IN (SELECT partition_hour FROM saved_partitions);

INSERT INTO history.uptime_report_partitions (
    partition_hour, as_of, stores, uptime_day_us, business_day_us, uptime_week_us,
    business_week_us, computed_at, run_id
)
SELECT
    saved_partitions.partition_hour,
    saved_partitions.as_of,
    count(report_results.store_id),
    coalesce(sum(report_results.uptime_day_us), 0),
    coalesce(sum(report_results.business_day_us), 0),
    coalesce(sum(report_results.uptime_week_us), 0),
    coalesce(sum(report_results.business_week_us), 0),
    $computed_at,
    $run_id
FROM saved_partitions
LEFT JOIN report_results USING (as_of)
GROUP BY saved_partitions.partition_hour, saved_partitions.as_of;
