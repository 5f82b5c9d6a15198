-- C and F (report_timelines.sql) read where the batch's reports need them, as temp tables:
-- at the batch's instants (T, T - 1 h, T - 1 day and T - 7 days of every as-of, shared by all
-- stores: hourly reports share most of them), for every (store, sequence) in use; and where
-- the span of a report's last usable poll ends. Each reading is made once, whatever number of
-- reports needs it.

CREATE OR REPLACE TEMP TABLE report_instants AS
WITH as_of_instants AS (
    SELECT
        as_of,
        epoch_us(as_of) AS t_us,
        epoch_us(as_of) - 3600000000 AS hour_us,
        epoch_us(as_of) - 86400000000 AS day_us,
        epoch_us(as_of) - 604800000000 AS week_us
    FROM report_as_of
),
batch_instants AS (
    SELECT x_us, row_number() OVER (ORDER BY x_us)::INTEGER AS position
    FROM (SELECT DISTINCT unnest([t_us, hour_us, day_us, week_us]) AS x_us FROM as_of_instants)
)
SELECT
    as_of_instants.*,
    t.position AS t_pos,
    h.position AS hour_pos,
    d.position AS day_pos,
    w.position AS week_pos
FROM as_of_instants
JOIN batch_instants AS t ON t.x_us = as_of_instants.t_us
JOIN batch_instants AS h ON h.x_us = as_of_instants.hour_us
JOIN batch_instants AS d ON d.x_us = as_of_instants.day_us
JOIN batch_instants AS w ON w.x_us = as_of_instants.week_us;

-- one row per (as-of, reported store): stores with a poll at or before T (§2.3), with the
-- sequence the store uses at T, and its last usable poll at or before T
CREATE OR REPLACE TEMP TABLE store_reports AS
WITH last_poll_candidates AS (
    -- a last poll at or before some T is followed by nothing or by a poll after the earliest T
    SELECT * FROM poll_spans
    WHERE next_ts IS NULL OR next_ts > (SELECT min(as_of) FROM report_instants)
),
reported AS (
    SELECT
        report_instants.as_of,
        report_stores.store_key,
        CASE
            WHEN first_in_hours.first_in_hours <= report_instants.as_of THEN false
            ELSE true
        END AS all_polls
    FROM report_instants
    JOIN report_stores ON report_stores.first_poll <= report_instants.as_of
    LEFT JOIN first_in_hours USING (store_key)
)
SELECT
    reported.*,
    poll_spans.ts AS last_ts,
    poll_spans.is_active AS last_active,
    poll_spans.span_end_us AS last_span_end_us
FROM reported
ASOF JOIN last_poll_candidates AS poll_spans
    ON poll_spans.store_key = reported.store_key
    AND poll_spans.all_polls = reported.all_polls
    AND poll_spans.ts <= reported.as_of;

-- where C and F are read: every (store, sequence) in use at every instant of the batch (with
-- the instant's position), and where the span of a report's last poll ends inside its week
-- (with that poll's instant)
CREATE OR REPLACE TEMP TABLE reading_points AS
WITH batch_instants AS (
    SELECT DISTINCT t_pos AS position, t_us AS x_us FROM report_instants
    UNION SELECT DISTINCT hour_pos, hour_us FROM report_instants
    UNION SELECT DISTINCT day_pos, day_us FROM report_instants
    UNION SELECT DISTINCT week_pos, week_us FROM report_instants
)
SELECT
    pairs.store_key,
    pairs.all_polls,
    batch_instants.x_us,
    reading_key(pairs.store_key, pairs.all_polls, batch_instants.position) AS reading_key,
    NULL::TIMESTAMP AS last_ts
FROM (SELECT DISTINCT store_key, all_polls FROM store_reports) AS pairs
CROSS JOIN batch_instants
UNION ALL
SELECT DISTINCT
    store_reports.store_key,
    store_reports.all_polls,
    store_reports.last_span_end_us,
    NULL::BIGINT,
    store_reports.last_ts
FROM store_reports
JOIN report_instants USING (as_of)
WHERE store_reports.last_span_end_us > report_instants.week_us
  AND store_reports.last_span_end_us < report_instants.t_us;

CREATE OR REPLACE TEMP TABLE readings AS
WITH business_readings AS (
    SELECT
        reading_points.*,
        cumulative_at(
            business_cumulative.before_us,
            business_cumulative.start_us,
            business_cumulative.end_us,
            reading_points.x_us
        ) AS business_us
    FROM reading_points
    ASOF LEFT JOIN business_cumulative
        ON business_cumulative.store_key = reading_points.store_key
        AND business_cumulative.start_us <= reading_points.x_us
)
SELECT
    business_readings.reading_key,
    business_readings.store_key,
    business_readings.all_polls,
    business_readings.last_ts,
    business_readings.business_us,
    cumulative_at(
        uptime_cumulative.before_us,
        uptime_cumulative.start_us,
        uptime_cumulative.end_us,
        business_readings.x_us
    ) AS uptime_us
FROM business_readings
ASOF LEFT JOIN uptime_cumulative
    ON uptime_cumulative.store_key = business_readings.store_key
    AND uptime_cumulative.all_polls = business_readings.all_polls
    AND uptime_cumulative.start_us <= business_readings.x_us;
