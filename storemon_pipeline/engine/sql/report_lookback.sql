-- The polls a batch of reports reads first (docs/semantics.md §2.7): those of the reported
-- stores in the look-back [$horizon, $last_as_of], each flagged in business hours or not.
-- Needs report_stores(store_key, ...) and report_windows(store_key, window_start, window_end).
CREATE OR REPLACE TEMP TABLE lookback_polls AS
WITH recent_polls AS (
    SELECT polls.store_key, polls.ts, polls.is_active
    FROM polls
    SEMI JOIN report_stores USING (store_key)
    WHERE polls.ts BETWEEN $horizon AND $last_as_of
      -- the chunk's key range: where polls are clustered by store, most row groups are skipped
      AND polls.store_key BETWEEN $first_key AND $last_key
),
window_days AS (
    -- each window under every UTC day it touches, so that a poll meets only the windows of
    -- its own day (a hash join: no sort of the polls); microseconds, compared as integers
    SELECT
        store_key,
        epoch_us(window_start) AS start_us,
        epoch_us(window_end) AS end_us,
        unnest(range(
            epoch_us(window_start) // 86400000000,
            (epoch_us(window_end) - 1) // 86400000000 + 1
        )) AS utc_day
    FROM report_windows
),
recent_polls_us AS (
    SELECT *, epoch_us(ts) AS ts_us FROM recent_polls
)
-- windows are disjoint, so a poll meets at most one window that holds it (a poll exactly at a
-- window's start is in it, at its end is not)
SELECT
    recent_polls_us.store_key,
    recent_polls_us.ts,
    recent_polls_us.is_active,
    window_days.store_key IS NOT NULL AS in_hours
FROM recent_polls_us
LEFT JOIN window_days
    ON window_days.store_key = recent_polls_us.store_key
    AND window_days.utc_day = recent_polls_us.ts_us // 86400000000
    AND recent_polls_us.ts_us >= window_days.start_us
    AND recent_polls_us.ts_us < window_days.end_us;
