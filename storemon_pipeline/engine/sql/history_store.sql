-- One store's history (attached file `history`): its row in every partition whose as-of lies
-- in [$since, $until], oldest first, with the values of the report CSV; a partition a blocking
-- check withheld is left out.
SELECT
    partition_hour,
    as_of,
    unnest(csv_values(
        uptime_hour_us, uptime_day_us, uptime_week_us,
        business_hour_us, business_day_us, business_week_us
    ))
FROM history.uptime_report
WHERE store_id = $store_id
  AND ($since::TIMESTAMP IS NULL OR as_of >= $since::TIMESTAMP)
  AND ($until::TIMESTAMP IS NULL OR as_of <= $until::TIMESTAMP)
  AND partition_hour NOT IN (
      SELECT partition_hour FROM history.uptime_report_partitions WHERE withheld_by IS NOT NULL
  )
ORDER BY partition_hour
