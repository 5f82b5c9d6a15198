-- The SLA CSV (docs/semantics.md §2.17) of one period of sla_results: period bounds in UTC,
-- hours and minutes with 2 decimals, rounded half up at the very end; the availability and
-- target empty without business time; without incidents the longest is 0.00 and the mean
-- time to recover empty.
SELECT
    store_id,
    iso_utc(period_start) AS period_start,
    iso_utc(period_end) AS period_end,
    two_decimals(business_us, 3600000000) AS business_hours,
    two_decimals(uptime_us, 3600000000) AS uptime_hours,
    two_decimals(downtime_us, 3600000000) AS downtime_hours,
    CASE WHEN business_us > 0 THEN two_decimals_ratio(100 * uptime_us, business_us) END
        AS availability_pct,
    incidents,
    two_decimals(longest_incident_us, 60000000) AS longest_incident_minutes,
    CASE WHEN incidents > 0 THEN two_decimals_ratio(incident_us, incidents * 60000000) END
        AS mean_time_to_recover_minutes,
    target_met
FROM sla_results
WHERE period_id = $period_id
ORDER BY store_id
