-- The report CSV (docs/semantics.md §2.10) of one as-of of report_results: hour values in minutes, day and
-- week in hours.
SELECT
    store_id,
    two_decimals(uptime_hour_us, 60000000) AS uptime_last_hour,
    two_decimals(uptime_day_us, 3600000000) AS uptime_last_day,
    two_decimals(uptime_week_us, 3600000000) AS uptime_last_week,
    two_decimals(business_hour_us - uptime_hour_us, 60000000) AS downtime_last_hour,
    two_decimals(business_day_us - uptime_day_us, 3600000000) AS downtime_last_day,
    two_decimals(business_week_us - uptime_week_us, 3600000000) AS downtime_last_week
FROM report_results
WHERE as_of = $as_of
ORDER BY store_id
