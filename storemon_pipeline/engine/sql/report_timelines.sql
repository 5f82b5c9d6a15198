-- The timelines a batch of reports reads (docs/semantics.md §2.7-§2.9), as temp tables.
-- Inputs (temp tables):
--   report_as_of(as_of)                                      the instants, any number
--   report_stores(store_key, store_id, first_poll)          stores with a poll <= the last one
--   report_windows(store_key, window_start, window_end)      merged, from the look-back on
--   lookback_polls(store_key, ts, is_active, in_hours)       every poll of the look-back
--   prior_polls(store_key, ts, is_active, all_polls)         before the look-back: the last
--                                                            in-hours poll and the last poll
-- A store's usable polls form one of two sequences (§2.7): its in-hours polls, once it has one
-- at or before T, else all its polls. Over a sequence each poll owns the span between the
-- midpoints with its neighbours (§2.8), and equal neighbours form status runs. A sequence is
-- named by all_polls (false: the in-hours polls, true: all polls). The business time (C) is
-- kept as a prefix sum over time, read at any instant x with an ASOF join; the business time
-- while active (F) is made from it and the status runs where it is read (report_readings.sql,
-- sla_values.sql).
-- All times are integer microseconds since the epoch.

-- a store uses its in-hours polls for every T at or after its first one
CREATE OR REPLACE TEMP TABLE first_in_hours AS
SELECT store_key, min(ts) AS first_in_hours
FROM (
    SELECT store_key, ts FROM lookback_polls WHERE in_hours
    UNION ALL
    SELECT store_key, ts FROM prior_polls WHERE NOT all_polls
)
GROUP BY store_key;

CREATE OR REPLACE TEMP TABLE poll_spans AS
WITH stores_with_fallback AS (
    -- stores that use all their polls for some T of the batch
    SELECT report_stores.store_key
    FROM report_stores
    LEFT JOIN first_in_hours USING (store_key)
    WHERE first_in_hours.first_in_hours IS NULL
       OR first_in_hours.first_in_hours > (SELECT min(as_of) FROM report_as_of)
),
sequence_polls AS (
    SELECT store_key, false AS all_polls, ts, is_active FROM lookback_polls WHERE in_hours
    UNION ALL
    SELECT store_key, true AS all_polls, ts, is_active
    FROM lookback_polls SEMI JOIN stores_with_fallback USING (store_key)
    UNION ALL
    SELECT store_key, all_polls, ts, is_active
    FROM prior_polls
    WHERE NOT all_polls OR store_key IN (SELECT store_key FROM stores_with_fallback)
)
-- the later poll owns the midpoint; the first and last polls own everything before and after
SELECT
    store_key,
    all_polls,
    ts,
    is_active,
    coalesce((epoch_us(lag(ts) OVER by_time) + epoch_us(ts)) // 2, -(1::BIGINT << 60))
        AS span_start_us,
    coalesce((epoch_us(ts) + epoch_us(lead(ts) OVER by_time)) // 2, 1::BIGINT << 60)
        AS span_end_us,
    lead(ts) OVER by_time AS next_ts,
    is_active IS DISTINCT FROM lag(is_active) OVER by_time AS status_changes
FROM sequence_polls
WINDOW by_time AS (PARTITION BY store_key, all_polls ORDER BY ts);

CREATE OR REPLACE TEMP TABLE business_cumulative AS
WITH windows_us AS (
    SELECT store_key, epoch_us(window_start) AS start_us, epoch_us(window_end) AS end_us
    FROM report_windows
)
SELECT
    store_key,
    start_us,
    end_us,
    coalesce(sum(end_us - start_us) OVER (
        PARTITION BY store_key ORDER BY start_us
        ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING
    ), 0)::BIGINT AS before_us
FROM windows_us;

-- consecutive polls of a sequence with the same status own one run of time: from the span
-- start of its first poll (a poll whose status differs from the previous one) to the span
-- start of the next run's first poll; the last run, to the end of time
CREATE OR REPLACE TEMP TABLE status_runs AS
SELECT
    store_key,
    all_polls,
    ts AS first_ts,
    is_active,
    span_start_us AS run_start_us,
    coalesce(
        lead(span_start_us) OVER (PARTITION BY store_key, all_polls ORDER BY ts),
        1::BIGINT << 60
    ) AS run_end_us
FROM poll_spans
WHERE status_changes;
