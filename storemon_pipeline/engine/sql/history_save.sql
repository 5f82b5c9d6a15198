-- Replace the history of the partitions in saved_partitions(as_of, partition_hour) with their
-- reports in report_results.
DELETE FROM history.uptime_report
WHERE partition_hour IN (SELECT partition_hour FROM saved_partitions);

DELETE FROM history.uptime_report_partitions
WHERE partition_hour IN (SELECT partition_hour FROM saved_partitions);

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
