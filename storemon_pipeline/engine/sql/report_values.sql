-- Uptime and business time (microseconds) of every reported store for every as-of instant of
-- the batch (docs/semantics.md §2). Inputs (temp tables):
--   report_as_of(as_of)                                      the instants, any number
--   report_stores(store_key, store_id, first_poll)          stores with a poll <= the last one
--   report_windows(store_key, window_start, window_end)      merged, from the look-back on
--   lookback_polls(store_key, ts, is_active, in_hours)       every poll of the look-back
--   prior_polls(store_key, ts, is_active, sequence)          before the look-back: the last
--                                                            in-hours poll and the last poll
--
-- A store's usable polls form one of two sequences (§2.7): its in-hours polls, once it has one
-- at or before T, else all its polls. Over a sequence each poll owns the span between the
-- midpoints with its neighbours (§2.8), and equal neighbours form status runs. For every
-- (sequence, store) the time that is business time (C) and business time while active (F) are
-- prefix sums, read at five instants per (as-of, store): T, T - 1 h, T - 1 day, T - 7 days and
-- the end of the span of the last poll at or before T. That last poll owns everything up to T,
-- whatever polls come after T: only the part of [T - period, T) after its span's end is
-- corrected. So a batch of as-of instants costs little more than one.
-- All times are integer microseconds since the epoch.
CREATE OR REPLACE TEMP TABLE report_results AS
WITH first_in_hours AS (
    -- a store uses its in-hours polls for every T at or after its first one
    SELECT store_key, min(ts) AS first_in_hours
    FROM (
        SELECT store_key, ts FROM lookback_polls WHERE in_hours
        UNION ALL
        SELECT store_key, ts FROM prior_polls WHERE sequence = 'in_hours'
    )
    GROUP BY store_key
),
stores_with_fallback AS (
    -- stores that use all their polls for some T of the batch
    SELECT report_stores.store_key
    FROM report_stores
    LEFT JOIN first_in_hours USING (store_key)
    WHERE first_in_hours.first_in_hours IS NULL
       OR first_in_hours.first_in_hours > (SELECT min(as_of) FROM report_as_of)
),
sequence_polls AS (
    SELECT store_key, 'in_hours' AS sequence, ts, is_active FROM lookback_polls WHERE in_hours
    UNION ALL
    SELECT store_key, 'all' AS sequence, ts, is_active
    FROM lookback_polls SEMI JOIN stores_with_fallback USING (store_key)
    UNION ALL
    SELECT store_key, sequence, ts, is_active
    FROM prior_polls
    WHERE sequence = 'in_hours' OR store_key IN (SELECT store_key FROM stores_with_fallback)
),
poll_spans AS (
    -- the later poll owns the midpoint; the first and last polls own everything before and after
    SELECT
        store_key,
        sequence,
        ts,
        is_active,
        coalesce((epoch_us(lag(ts) OVER by_time) + epoch_us(ts)) // 2, -(1::BIGINT << 60))
            AS span_start_us,
        coalesce((epoch_us(ts) + epoch_us(lead(ts) OVER by_time)) // 2, 1::BIGINT << 60)
            AS span_end_us,
        is_active IS DISTINCT FROM lag(is_active) OVER by_time AS status_changes
    FROM sequence_polls
    WINDOW by_time AS (PARTITION BY store_key, sequence ORDER BY ts)
),
active_runs AS (
    -- a run of equal statuses starts at a poll whose status differs from the previous one
    SELECT store_key, sequence, run_start_us, run_end_us
    FROM (
        SELECT
            store_key,
            sequence,
            is_active,
            span_start_us AS run_start_us,
            coalesce(
                lead(span_start_us) OVER (PARTITION BY store_key, sequence ORDER BY span_start_us),
                1::BIGINT << 60
            ) AS run_end_us
        FROM poll_spans
        WHERE status_changes
    )
    WHERE is_active
),
windows_us AS (
    SELECT store_key, epoch_us(window_start) AS start_us, epoch_us(window_end) AS end_us
    FROM report_windows
),
business_cumulative AS (
    SELECT
        store_key,
        start_us,
        end_us,
        coalesce(sum(end_us - start_us) OVER (
            PARTITION BY store_key ORDER BY start_us
            ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING
        ), 0) AS before_us
    FROM windows_us
),
uptime_segments AS (
    -- business time while active: windows cut by active runs (both disjoint per store)
    SELECT
        windows_us.store_key,
        active_runs.sequence,
        greatest(windows_us.start_us, active_runs.run_start_us) AS start_us,
        least(windows_us.end_us, active_runs.run_end_us) AS end_us
    FROM windows_us
    JOIN active_runs
        ON active_runs.store_key = windows_us.store_key
        AND active_runs.run_start_us < windows_us.end_us
        AND active_runs.run_end_us > windows_us.start_us
),
uptime_cumulative AS (
    SELECT
        store_key,
        sequence,
        start_us,
        end_us,
        coalesce(sum(end_us - start_us) OVER (
            PARTITION BY store_key, sequence ORDER BY start_us
            ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING
        ), 0) AS before_us
    FROM uptime_segments
),
store_reports AS (
    -- one row per (as-of, reported store): stores with a poll at or before T (§2.3)
    SELECT
        report_as_of.as_of,
        epoch_us(report_as_of.as_of) AS t_us,
        report_stores.store_key,
        report_stores.store_id,
        CASE
            WHEN first_in_hours.first_in_hours <= report_as_of.as_of THEN 'in_hours'
            ELSE 'all'
        END AS sequence
    FROM report_as_of
    JOIN report_stores ON report_stores.first_poll <= report_as_of.as_of
    LEFT JOIN first_in_hours USING (store_key)
),
last_polls AS (
    -- the last usable poll at or before T, its status, and where its span ends
    SELECT
        store_reports.*,
        poll_spans.is_active AS last_active,
        least(greatest(poll_spans.span_end_us, store_reports.t_us - 604800000000), store_reports.t_us)
            AS last_span_end_us
    FROM store_reports
    ASOF JOIN poll_spans
        ON poll_spans.store_key = store_reports.store_key
        AND poll_spans.sequence = store_reports.sequence
        AND poll_spans.ts <= store_reports.as_of
),
instants AS (
    -- 0: T, 1: T - 1 h, 2: T - 1 day, 3: T - 7 days, 4: the end of the last poll's span,
    -- clamped to [T - 7 days, T]
    SELECT
        as_of, store_key, sequence,
        unnest([0, 1, 2, 3, 4]) AS instant,
        unnest([
            t_us, t_us - 3600000000, t_us - 86400000000, t_us - 604800000000, last_span_end_us
        ]) AS x_us
    FROM last_polls
),
business_at AS (
    SELECT
        instants.*,
        coalesce(
            business_cumulative.before_us
                + least(instants.x_us, business_cumulative.end_us) - business_cumulative.start_us,
            0
        ) AS business_us
    FROM instants
    ASOF LEFT JOIN business_cumulative
        ON business_cumulative.store_key = instants.store_key
        AND business_cumulative.start_us <= instants.x_us
),
measured_at AS (
    SELECT
        business_at.*,
        coalesce(
            uptime_cumulative.before_us
                + least(business_at.x_us, uptime_cumulative.end_us) - uptime_cumulative.start_us,
            0
        ) AS uptime_us
    FROM business_at
    ASOF LEFT JOIN uptime_cumulative
        ON uptime_cumulative.store_key = business_at.store_key
        AND uptime_cumulative.sequence = business_at.sequence
        AND uptime_cumulative.start_us <= business_at.x_us
),
pivoted AS (
    SELECT
        as_of,
        store_key,
        max(x_us) FILTER (WHERE instant = 4) AS x4_us,
        max(business_us) FILTER (WHERE instant = 0) AS c0,
        max(business_us) FILTER (WHERE instant = 1) AS c1,
        max(business_us) FILTER (WHERE instant = 2) AS c2,
        max(business_us) FILTER (WHERE instant = 3) AS c3,
        max(business_us) FILTER (WHERE instant = 4) AS c4,
        max(uptime_us) FILTER (WHERE instant = 1) AS f1,
        max(uptime_us) FILTER (WHERE instant = 2) AS f2,
        max(uptime_us) FILTER (WHERE instant = 3) AS f3,
        max(uptime_us) FILTER (WHERE instant = 4) AS f4
    FROM measured_at
    GROUP BY as_of, store_key
)
-- uptime of [T - P, T): active business time up to the end of the last poll's span, then the
-- last poll's status over the rest of the business time
SELECT
    last_polls.as_of,
    last_polls.store_key,
    last_polls.store_id,
    CASE WHEN x4_us >= t_us - 3600000000 THEN f4 - f1 + last_active::INT * (c0 - c4)
         ELSE last_active::INT * (c0 - c1) END::BIGINT AS uptime_hour_us,
    CASE WHEN x4_us >= t_us - 86400000000 THEN f4 - f2 + last_active::INT * (c0 - c4)
         ELSE last_active::INT * (c0 - c2) END::BIGINT AS uptime_day_us,
    (f4 - f3 + last_active::INT * (c0 - c4))::BIGINT AS uptime_week_us,
    (c0 - c1)::BIGINT AS business_hour_us,
    (c0 - c2)::BIGINT AS business_day_us,
    (c0 - c3)::BIGINT AS business_week_us
FROM last_polls
JOIN pivoted USING (as_of, store_key)
ORDER BY last_polls.as_of, last_polls.store_id;
