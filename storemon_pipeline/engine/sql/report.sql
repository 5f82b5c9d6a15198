-- Uptime and business time (microseconds) per reported store for the report as of $as_of
-- (docs/semantics.md §2).
-- Reported stores: those with a poll at or before $as_of (and in $store_ids, when given).
-- Needs business_windows to cover every poll up to $as_of (windows.ensure_business_windows).
WITH scoped_stores AS (
    SELECT store_key, store_id
    FROM stores
    WHERE $store_ids IS NULL OR store_id IN (SELECT unnest($store_ids::VARCHAR[]))
),
known_polls AS (
    SELECT polls.store_key, polls.ts, polls.is_active
    FROM polls
    SEMI JOIN scoped_stores USING (store_key)
    WHERE polls.ts <= $as_of
),
windows AS (
    -- a window starting exactly at $as_of adds no business time, but a poll at $as_of is in it
    SELECT business_windows.store_key, window_start, window_end
    FROM business_windows
    SEMI JOIN scoped_stores USING (store_key)
    WHERE window_start <= $as_of
),
polls_in_hours AS (
    -- windows are disjoint, so a poll is in hours iff it is before the end of the last window
    -- that starts at or before it
    SELECT known_polls.*, coalesce(known_polls.ts < windows.window_end, false) AS in_hours
    FROM known_polls
    ASOF LEFT JOIN windows
        ON known_polls.store_key = windows.store_key AND known_polls.ts >= windows.window_start
),
stores_with_polls_in_hours AS (
    SELECT DISTINCT store_key FROM polls_in_hours WHERE in_hours
),
usable_polls AS (
    -- the in-hours polls; a store with none uses all its polls (§2.7)
    SELECT store_key, ts, is_active
    FROM polls_in_hours
    WHERE in_hours OR store_key NOT IN (SELECT store_key FROM stores_with_polls_in_hours)
),
poll_spans AS (
    -- each poll owns the time nearer to it than to its neighbours (§2.8); the later poll owns the
    -- midpoint; the first and last polls own everything before and after them
    SELECT
        store_key,
        is_active,
        coalesce(
            make_timestamp((epoch_us(lag(ts) OVER by_time) + epoch_us(ts)) // 2),
            '-infinity'::TIMESTAMP
        ) AS span_start,
        is_active IS DISTINCT FROM lag(is_active) OVER by_time AS status_changes
    FROM usable_polls
    WINDOW by_time AS (PARTITION BY store_key ORDER BY ts)
),
status_runs AS (
    -- a run of equal statuses starts at a poll whose status differs from the previous one
    -- and lasts until the next such poll
    SELECT
        store_key,
        is_active,
        span_start AS run_start,
        coalesce(lead(span_start) OVER (PARTITION BY store_key ORDER BY span_start), 'infinity'::TIMESTAMP)
            AS run_end
    FROM poll_spans
    WHERE status_changes
),
week_business AS (
    -- business time within the last week, [as_of - 7 days, as_of)
    SELECT
        store_key,
        greatest(window_start, $as_of - INTERVAL 7 DAY) AS part_start,
        least(window_end, $as_of) AS part_end
    FROM windows
    WHERE window_end > $as_of - INTERVAL 7 DAY
),
week_uptime AS (
    SELECT
        week_business.store_key,
        greatest(week_business.part_start, status_runs.run_start) AS part_start,
        least(week_business.part_end, status_runs.run_end) AS part_end
    FROM week_business
    JOIN status_runs
        ON status_runs.store_key = week_business.store_key
        AND status_runs.is_active
        AND status_runs.run_start < week_business.part_end
        AND status_runs.run_end > week_business.part_start
),
measured_parts AS (
    SELECT store_key, 'business' AS measure, part_start, part_end FROM week_business
    UNION ALL
    SELECT store_key, 'uptime' AS measure, part_start, part_end FROM week_uptime
),
totals AS (
    SELECT
        store_key,
        sum(overlap_us(part_start, part_end, $as_of - INTERVAL 1 HOUR))
            FILTER (WHERE measure = 'uptime') AS uptime_hour_us,
        sum(overlap_us(part_start, part_end, $as_of - INTERVAL 1 DAY))
            FILTER (WHERE measure = 'uptime') AS uptime_day_us,
        sum(overlap_us(part_start, part_end, $as_of - INTERVAL 7 DAY))
            FILTER (WHERE measure = 'uptime') AS uptime_week_us,
        sum(overlap_us(part_start, part_end, $as_of - INTERVAL 1 HOUR))
            FILTER (WHERE measure = 'business') AS business_hour_us,
        sum(overlap_us(part_start, part_end, $as_of - INTERVAL 1 DAY))
            FILTER (WHERE measure = 'business') AS business_day_us,
        sum(overlap_us(part_start, part_end, $as_of - INTERVAL 7 DAY))
            FILTER (WHERE measure = 'business') AS business_week_us
    FROM measured_parts
    GROUP BY store_key
)
SELECT
    scoped_stores.store_id,
    coalesce(uptime_hour_us, 0)::BIGINT AS uptime_hour_us,
    coalesce(uptime_day_us, 0)::BIGINT AS uptime_day_us,
    coalesce(uptime_week_us, 0)::BIGINT AS uptime_week_us,
    coalesce(business_hour_us, 0)::BIGINT AS business_hour_us,
    coalesce(business_day_us, 0)::BIGINT AS business_day_us,
    coalesce(business_week_us, 0)::BIGINT AS business_week_us
FROM scoped_stores
SEMI JOIN (SELECT DISTINCT store_key FROM known_polls) AS reported USING (store_key)
LEFT JOIN totals USING (store_key)
ORDER BY scoped_stores.store_id
