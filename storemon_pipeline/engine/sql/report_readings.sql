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

-- the windows of every (store, sequence) in use cut by the sequence's status runs (which tile
-- all time): each piece knows C and F at its start, so that one ASOF join reads both
CREATE OR REPLACE TEMP TABLE reading_pieces AS
WITH sequences_in_use AS (
    SELECT DISTINCT store_key, all_polls FROM store_reports
),
pieces AS (
    SELECT
        business_cumulative.store_key,
        status_runs.all_polls,
        greatest(business_cumulative.start_us, status_runs.run_start_us) AS start_us,
        least(business_cumulative.end_us, status_runs.run_end_us) AS end_us,
        status_runs.is_active,
        business_cumulative.before_us
            + greatest(business_cumulative.start_us, status_runs.run_start_us)
            - business_cumulative.start_us AS business_before_us
    FROM business_cumulative
    JOIN status_runs
        ON status_runs.store_key = business_cumulative.store_key
        AND status_runs.run_start_us < business_cumulative.end_us
        AND status_runs.run_end_us > business_cumulative.start_us
    SEMI JOIN sequences_in_use
        ON sequences_in_use.store_key = status_runs.store_key
        AND sequences_in_use.all_polls = status_runs.all_polls
)
SELECT
    *,
    coalesce(sum(CASE WHEN is_active THEN end_us - start_us ELSE 0 END) OVER (
        PARTITION BY store_key, all_polls ORDER BY start_us
        ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING
    ), 0)::BIGINT AS uptime_before_us
FROM pieces;

-- C(x) and F(x): the business time before x and the business time while active before x
CREATE OR REPLACE TEMP TABLE readings AS
SELECT
    reading_points.reading_key,
    reading_points.store_key,
    reading_points.all_polls,
    reading_points.last_ts,
    cumulative_at(
        reading_pieces.business_before_us,
        reading_pieces.start_us,
        reading_pieces.end_us,
        reading_points.x_us
    ) AS business_us,
    cumulative_at(
        reading_pieces.uptime_before_us,
        reading_pieces.start_us,
        CASE WHEN reading_pieces.is_active THEN reading_pieces.end_us
             ELSE reading_pieces.start_us END,
        reading_points.x_us
    ) AS uptime_us
FROM reading_points
ASOF LEFT JOIN reading_pieces
    ON reading_pieces.store_key = reading_points.store_key
    AND reading_pieces.all_polls = reading_points.all_polls
    AND reading_pieces.start_us <= reading_points.x_us;
