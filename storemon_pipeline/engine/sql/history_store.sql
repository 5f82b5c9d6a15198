-- One store's history (attached file `history`): its row in every partition whose as-of lies
-- in [$since, $until], oldest first, with the values of the report CSV, unrounded.
SELECT
    partition_hour,
    as_of,
    uptime_hour_us / 60e6 AS uptime_last_hour,
    uptime_day_us / 3600e6 AS uptime_last_day,
    uptime_week_us / 3600e6 AS uptime_last_week,
    (business_hour_us - uptime_hour_us) / 60e6 AS downtime_last_hour,
    (business_day_us - uptime_day_us) / 3600e6 AS downtime_last_day,
    (business_week_us - uptime_week_us) / 3600e6 AS downtime_last_week
FROM history.uptime_report
WHERE store_id = $store_id
  AND ($since::TIMESTAMP IS NULL OR as_of >= $since::TIMESTAMP)
  AND ($until::TIMESTAMP IS NULL OR as_of <= $until::TIMESTAMP)
ORDER BY partition_hour
