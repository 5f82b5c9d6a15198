-- The fleet's history (attached file `history`): for every partition in [$since, $until] (by
-- default the newest week of them), the share of all stores' business time that was up in the
-- last hour, day and week of its report (NULL without business time), oldest first.
WITH newest AS (
    SELECT max(partition_hour) AS partition_hour FROM history.uptime_report_partitions
),
chosen_partitions AS (
    SELECT partition_hour, as_of, stores
    FROM history.uptime_report_partitions
    WHERE withheld_by IS NULL  -- a partition a blocking check withheld is not history
      AND partition_hour >= coalesce(
              $since::TIMESTAMP, (SELECT partition_hour FROM newest) - INTERVAL 167 HOUR)
      AND partition_hour <= coalesce($until::TIMESTAMP, (SELECT partition_hour FROM newest))
),
fleet_totals AS (
    SELECT
        partition_hour,
        sum(uptime_hour_us) AS uptime_hour_us,
        sum(business_hour_us) AS business_hour_us,
        sum(uptime_day_us) AS uptime_day_us,
        sum(business_day_us) AS business_day_us,
        sum(uptime_week_us) AS uptime_week_us,
        sum(business_week_us) AS business_week_us
    FROM history.uptime_report
    SEMI JOIN chosen_partitions USING (partition_hour)
    GROUP BY partition_hour
)
SELECT
    chosen_partitions.partition_hour,
    chosen_partitions.as_of,
    chosen_partitions.stores,
    fleet_totals.uptime_hour_us / nullif(fleet_totals.business_hour_us, 0) AS uptime_share_hour,
    fleet_totals.uptime_day_us / nullif(fleet_totals.business_day_us, 0) AS uptime_share_day,
    fleet_totals.uptime_week_us / nullif(fleet_totals.business_week_us, 0) AS uptime_share_week
FROM chosen_partitions
LEFT JOIN fleet_totals USING (partition_hour)
ORDER BY chosen_partitions.partition_hour;
