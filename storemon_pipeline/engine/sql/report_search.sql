-- One round of the search before the look-back, for the stores in search_stores(store_key,
-- store_id, first_poll): their polls in [$chunk_from, $chunk_to), flagged in hours with
-- search_windows, give each store its last in-hours poll and its last poll of the chunk.
CREATE OR REPLACE TEMP TABLE search_found AS
WITH chunk_polls AS (
    SELECT polls.store_key, polls.ts, polls.is_active
    FROM polls
    SEMI JOIN search_stores USING (store_key)
    WHERE polls.ts >= $chunk_from AND polls.ts < $chunk_to
),
flagged_polls AS (
    SELECT
        chunk_polls.*,
        coalesce(chunk_polls.ts < search_windows.window_end, false) AS in_hours
    FROM chunk_polls
    ASOF LEFT JOIN search_windows
        ON chunk_polls.store_key = search_windows.store_key
        AND chunk_polls.ts >= search_windows.window_start
)
SELECT
    store_key,
    max(ts) FILTER (WHERE in_hours) AS last_in_hours_ts,
    arg_max(is_active, ts) FILTER (WHERE in_hours) AS last_in_hours_active,
    max(ts) AS last_ts,
    arg_max(is_active, ts) AS last_active,
    arg_max(in_hours, ts) AS last_in_hours
FROM flagged_polls
GROUP BY store_key;
