-- Business time and uptime (microseconds) of every store's period (docs/semantics.md §2.17),
-- from the report's timelines (report_timelines.sql: first_in_hours, poll_spans, status_runs,
-- business_cumulative) and sla_store_periods (sla_periods.sql).
-- What is computed here starts at counted_from (the settled days before it are added by
-- sla_results.sql). That part is the report's "last P" as of its as-of A with
-- P = A - counted_from: the store's usable polls are those at or before A (§2.7), the last of
-- them owns everything up to A (§2.8), and C and F are read at counted_from, the period's end,
-- and where that poll's span ends (clamped into the period), as report_values.sql reads them.

-- F as a prefix sum over each (store, sequence): business time while active
CREATE OR REPLACE TEMP TABLE uptime_cumulative AS
WITH active_runs AS (
    SELECT store_key, all_polls, run_start_us, run_end_us FROM status_runs WHERE is_active
),
uptime_segments AS (
    -- business time while active: windows cut by active runs (both disjoint per store)
    SELECT
        business_cumulative.store_key,
        active_runs.all_polls,
        greatest(business_cumulative.start_us, active_runs.run_start_us) AS start_us,
        least(business_cumulative.end_us, active_runs.run_end_us) AS end_us
    FROM business_cumulative
    JOIN active_runs
        ON active_runs.store_key = business_cumulative.store_key
        AND active_runs.run_start_us < business_cumulative.end_us
        AND active_runs.run_end_us > business_cumulative.start_us
)
SELECT
    store_key,
    all_polls,
    start_us,
    end_us,
    coalesce(sum(end_us - start_us) OVER (
        PARTITION BY store_key, all_polls ORDER BY start_us
        ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING
    ), 0)::BIGINT AS before_us
FROM uptime_segments;

-- the sequence each store-period uses and its last usable poll at or before A
CREATE OR REPLACE TEMP TABLE sla_sequences AS
WITH last_poll_candidates AS (
    -- a last poll at or before some A is followed by nothing or by a poll after the earliest A
    SELECT * FROM poll_spans
    WHERE next_ts IS NULL OR next_ts > (SELECT min(as_of) FROM report_as_of)
),
period_sequences AS (
    SELECT
        sla_store_periods.*,
        NOT coalesce(first_in_hours.first_in_hours <= sla_store_periods.as_of, false)
            AS all_polls,
        -- what is computed from the polls: from where the settled days stop
        epoch_us(sla_store_periods.counted_from) AS start_us,
        epoch_us(sla_store_periods.period_end) AS end_us
    FROM sla_store_periods
    LEFT JOIN first_in_hours USING (store_key)
)
SELECT
    period_sequences.*,
    poll_spans.ts AS last_ts,
    coalesce(poll_spans.is_active, false) AS last_active,
    -- (a period that ends before it starts, after the latest poll, is empty: nothing is read)
    least(
        greatest(coalesce(poll_spans.span_end_us, period_sequences.start_us),
                 period_sequences.start_us),
        period_sequences.end_us
    ) AS span_end_us
FROM period_sequences
ASOF LEFT JOIN last_poll_candidates AS poll_spans
    ON poll_spans.store_key = period_sequences.store_key
    AND poll_spans.all_polls = period_sequences.all_polls
    AND poll_spans.ts <= period_sequences.as_of;

CREATE OR REPLACE TEMP TABLE sla_values AS
WITH reading_points AS (
    SELECT period_id, store_key, all_polls, 'start' AS point, start_us AS x_us
    FROM sla_sequences
    UNION ALL
    SELECT period_id, store_key, all_polls, 'end', end_us FROM sla_sequences
    UNION ALL
    SELECT period_id, store_key, all_polls, 'span_end', span_end_us FROM sla_sequences
),
business_readings AS (
    -- C(x): business time before x
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
),
readings AS (
    -- F(x): business time while active before x, over the store-period's sequence
    SELECT
        business_readings.*,
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
        AND uptime_cumulative.start_us <= business_readings.x_us
),
pivoted AS (
    SELECT
        period_id,
        store_key,
        max(business_us) FILTER (WHERE point = 'start') AS c_start,
        max(business_us) FILTER (WHERE point = 'end') AS c_end,
        max(business_us) FILTER (WHERE point = 'span_end') AS c_span_end,
        max(uptime_us) FILTER (WHERE point = 'start') AS f_start,
        max(uptime_us) FILTER (WHERE point = 'span_end') AS f_span_end
    FROM readings
    GROUP BY period_id, store_key
)
SELECT
    sla_sequences.period_id,
    sla_sequences.store_key,
    sla_sequences.store_id,
    sla_sequences.period_start,
    sla_sequences.period_end,
    sla_sequences.all_polls,
    (pivoted.c_end - pivoted.c_start)::BIGINT AS business_us,
    (pivoted.f_span_end - pivoted.f_start
        + sla_sequences.last_active::INT * (pivoted.c_end - pivoted.c_span_end))::BIGINT
        AS uptime_us
FROM sla_sequences
JOIN pivoted USING (period_id, store_key);
