-- Uptime and business time (microseconds) of every reported store for every as-of instant of
-- the batch (docs/semantics.md §2), from the readings of report_readings.sql.
-- The last usable poll at or before T owns everything up to T, whatever polls come after T:
-- the uptime of [T - P, T) is the active business time up to the end of that poll's span
-- (F), then the poll's status over the rest of the business time (C).
-- Added to report_results (report_results_schema.sql): one chunk of stores at a time.
INSERT INTO report_results
WITH report_keys AS (
    SELECT
        store_reports.*,
        report_instants.t_us,
        report_instants.week_us,
        reading_key(store_reports.store_key, store_reports.all_polls, t_pos) AS t_key,
        reading_key(store_reports.store_key, store_reports.all_polls, hour_pos) AS hour_key,
        reading_key(store_reports.store_key, store_reports.all_polls, day_pos) AS day_key,
        reading_key(store_reports.store_key, store_reports.all_polls, week_pos) AS week_key
    FROM store_reports
    JOIN report_instants USING (as_of)
),
read_values AS (
    -- C and F at T (c0, f0), T - 1 h (c1, f1), T - 1 day (c2, f2), T - 7 days (c3, f3), and
    -- at the end of the last poll's span clamped to [T - 7 days, T] (x4: c4, f4)
    SELECT
        report_keys.as_of,
        report_keys.store_key,
        report_keys.t_us,
        report_keys.last_active::INT AS s,
        least(greatest(report_keys.last_span_end_us, report_keys.week_us), report_keys.t_us)
            AS x4_us,
        at_t.business_us AS c0,
        at_hour.business_us AS c1,
        at_day.business_us AS c2,
        at_week.business_us AS c3,
        at_hour.uptime_us AS f1,
        at_day.uptime_us AS f2,
        at_week.uptime_us AS f3,
        CASE
            WHEN report_keys.last_span_end_us >= report_keys.t_us THEN at_t.business_us
            WHEN report_keys.last_span_end_us <= report_keys.week_us THEN at_week.business_us
            ELSE at_span_end.business_us
        END AS c4,
        CASE
            WHEN report_keys.last_span_end_us >= report_keys.t_us THEN at_t.uptime_us
            WHEN report_keys.last_span_end_us <= report_keys.week_us THEN at_week.uptime_us
            ELSE at_span_end.uptime_us
        END AS f4
    FROM report_keys
    JOIN readings AS at_t ON at_t.reading_key = report_keys.t_key
    JOIN readings AS at_hour ON at_hour.reading_key = report_keys.hour_key
    JOIN readings AS at_day ON at_day.reading_key = report_keys.day_key
    JOIN readings AS at_week ON at_week.reading_key = report_keys.week_key
    LEFT JOIN readings AS at_span_end
        ON at_span_end.store_key = report_keys.store_key
        AND at_span_end.all_polls = report_keys.all_polls
        AND at_span_end.last_ts = report_keys.last_ts
)
SELECT
    read_values.as_of,
    read_values.store_key,
    report_stores.store_id,
    CASE WHEN x4_us >= t_us - 3600000000 THEN f4 - f1 + s * (c0 - c4)
         ELSE s * (c0 - c1) END::BIGINT AS uptime_hour_us,
    CASE WHEN x4_us >= t_us - 86400000000 THEN f4 - f2 + s * (c0 - c4)
         ELSE s * (c0 - c2) END::BIGINT AS uptime_day_us,
    (f4 - f3 + s * (c0 - c4))::BIGINT AS uptime_week_us,
    (c0 - c1)::BIGINT AS business_hour_us,
    (c0 - c2)::BIGINT AS business_day_us,
    (c0 - c3)::BIGINT AS business_week_us
FROM read_values
JOIN report_stores USING (store_key);
