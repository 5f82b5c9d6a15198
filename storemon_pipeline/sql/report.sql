-- Uptime and business time (microseconds) per reported store for the report as of $as_of.
-- Reported stores: those with a poll at or before $as_of (and in $store_ids, when given).
-- Needs business_windows to cover every poll up to $as_of (windows.ensure_business_windows).
WITH reported_stores AS (
    SELECT DISTINCT store_id
    FROM polls
    WHERE ts <= $as_of
      AND ($store_ids IS NULL OR store_id IN (SELECT unnest($store_ids::VARCHAR[])))
),
known_polls AS (
    SELECT polls.store_id, polls.ts, polls.is_active
    FROM polls
    SEMI JOIN reported_stores USING (store_id)
    WHERE polls.ts <= $as_of
),
windows AS (
    SELECT business_windows.store_id, window_start, window_end
    FROM business_windows
    SEMI JOIN reported_stores USING (store_id)
    WHERE window_start < $as_of
),
polls_in_hours AS (
    -- windows are disjoint, so the poll is in hours iff it is before the end of the last window
    -- that starts at or before it
    SELECT known_polls.*, coalesce(known_polls.ts < windows.window_end, false) AS in_hours
    FROM known_polls
    ASOF LEFT JOIN windows
        ON known_polls.store_id = windows.store_id AND known_polls.ts >= windows.window_start
),
usable_polls AS (
    -- the in-hours polls; a store with none uses all its polls
    SELECT store_id, ts, is_active
    FROM (
        SELECT *, bool_or(in_hours) OVER (PARTITION BY store_id) AS store_has_polls_in_hours
        FROM polls_in_hours
    )
    WHERE in_hours OR NOT store_has_polls_in_hours
),
poll_spans AS (
    -- each poll owns the time nearer to it than to its neighbours; the later poll owns the
    -- midpoint; the first and last polls own everything before and after them
    SELECT
        store_id,
        ts,
        is_active,
        coalesce(
            make_timestamp((epoch_us(lag(ts) OVER by_time) + epoch_us(ts)) // 2),
            '-infinity'::TIMESTAMP
        ) AS span_start,
        coalesce(
            make_timestamp((epoch_us(ts) + epoch_us(lead(ts) OVER by_time)) // 2),
            'infinity'::TIMESTAMP
        ) AS span_end,
        is_active IS DISTINCT FROM lag(is_active) OVER by_time AS status_changes
    FROM usable_polls
    WINDOW by_time AS (PARTITION BY store_id ORDER BY ts)
),
status_runs AS (
    SELECT *, sum(status_changes::INTEGER) OVER (PARTITION BY store_id ORDER BY ts) AS run
    FROM poll_spans
),
active_runs AS (
    SELECT store_id, min(span_start) AS run_start, max(span_end) AS run_end
    FROM status_runs
    WHERE is_active
    GROUP BY store_id, run
),
week_business AS (
    -- business time within the last week, [as_of - 7 days, as_of)
    SELECT
        store_id,
        greatest(window_start, $as_of - INTERVAL 7 DAY) AS part_start,
        least(window_end, $as_of) AS part_end
    FROM windows
    WHERE window_end > $as_of - INTERVAL 7 DAY
),
week_uptime AS (
    SELECT
        week_business.store_id,
        greatest(week_business.part_start, active_runs.run_start) AS part_start,
        least(week_business.part_end, active_runs.run_end) AS part_end
    FROM week_business
    JOIN active_runs
        ON active_runs.store_id = week_business.store_id
        AND active_runs.run_start < week_business.part_end
        AND active_runs.run_end > week_business.part_start
),
measured_parts AS (
    SELECT store_id, 'business' AS measure, part_start, part_end FROM week_business
    UNION ALL
    SELECT store_id, 'uptime' AS measure, part_start, part_end FROM week_uptime
),
totals AS (
    SELECT
        store_id,
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
    GROUP BY store_id
)
SELECT
    reported_stores.store_id,
    coalesce(uptime_hour_us, 0)::BIGINT AS uptime_hour_us,
    coalesce(uptime_day_us, 0)::BIGINT AS uptime_day_us,
    coalesce(uptime_week_us, 0)::BIGINT AS uptime_week_us,
    coalesce(business_hour_us, 0)::BIGINT AS business_hour_us,
    coalesce(business_day_us, 0)::BIGINT AS business_day_us,
    coalesce(business_week_us, 0)::BIGINT AS business_week_us
FROM reported_stores
LEFT JOIN totals USING (store_id)
ORDER BY reported_stores.store_id
