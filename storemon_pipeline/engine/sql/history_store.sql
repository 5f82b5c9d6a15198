-- One store's history (attached file `history`): its row in every partition whose as-of lies
-- in [$since, $until], oldest first, with the values of the report CSV (docs/semantics.md
-- §2.9-§2.10: minutes for the hour, hours for day and week, rounded half up to 2 decimals).
SELECT
    partition_hour,
    as_of,
    two_decimals(uptime_hour_us, 60000000) AS uptime_last_hour,
    two_decimals(uptime_day_us, 3600000000) AS uptime_last_day,
    two_decimals(uptime_week_us, 3600000000) AS uptime_last_week,
    two_decimals(business_hour_us - uptime_hour_us, 60000000) AS downtime_last_hour,
    two_decimals(business_day_us - uptime_day_us, 3600000000) AS downtime_last_day,
    two_decimals(business_week_us - uptime_week_us, 3600000000) AS downtime_last_week
FROM history.uptime_report
WHERE store_id = $store_id
  AND ($since::TIMESTAMP IS NULL OR as_of >= $since::TIMESTAMP)
  AND ($until::TIMESTAMP IS NULL OR as_of <= $until::TIMESTAMP)
ORDER BY partition_hour
