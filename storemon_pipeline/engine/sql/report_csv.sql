-- The report CSV (docs/semantics.md §2.10) of one as-of of report_results.
SELECT
    store_id,
    unnest(csv_values(
        uptime_hour_us, uptime_day_us, uptime_week_us,
        business_hour_us, business_day_us, business_week_us
    ))
FROM report_results
WHERE as_of = $as_of
ORDER BY store_id
