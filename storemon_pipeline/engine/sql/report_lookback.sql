-- The polls a batch of reports reads first (docs/semantics.md §2.7): those of the reported
-- stores in the look-back [$horizon, $last_as_of], each flagged in business hours or not.
-- Needs report_stores(store_key, ...) and report_windows(store_key, window_start, window_end).
CREATE OR REPLACE TEMP TABLE lookback_polls AS
WITH recent_polls AS (
    SELECT polls.store_key, polls.ts, polls.is_active
    FROM polls
    SEMI JOIN report_stores USING (store_key)
    WHERE polls.ts BETWEEN $horizon AND $last_as_of
)
-- windows are disjoint, so a poll is in hours iff it is before the end of the last window that
-- starts at or before it (a poll exactly at a window's start is in it, at its end is not)
SELECT
    recent_polls.store_key,
    recent_polls.ts,
    recent_polls.is_active,
    coalesce(recent_polls.ts < report_windows.window_end, false) AS in_hours
FROM recent_polls
ASOF LEFT JOIN report_windows
    ON recent_polls.store_key = report_windows.store_key
    AND recent_polls.ts >= report_windows.window_start;
