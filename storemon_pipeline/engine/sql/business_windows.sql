-- Business time of the stores in window_stores(store_key, store_id), as merged UTC intervals
-- [window_start, window_end), every interval that reaches into [$covers_from, $covers_to]
-- (docs/semantics.md §2.4-§2.6, §2.16): weekly hours on every local date, except the dates with
-- special hours, which have those instead. Needs the temp table
-- zone_offsets(timezone, valid_from, valid_to, utc_offset_sec) covering that span.
-- Linear in the number of windows: each wall-clock boundary is converted once per zone, and
-- each window end is looked up by equality on (zone, wall-clock time). {into}: the temp table's
-- name (engine/windows.py, build_business_windows).
CREATE OR REPLACE TEMP TABLE {into} AS
WITH store_zones AS (
    -- a store without a valid zone is in the default zone
    SELECT window_stores.store_key, window_stores.store_id,
           coalesce(timezones.timezone, $default_timezone) AS timezone
    FROM window_stores
    LEFT JOIN timezones USING (store_id)
),
stores_weekly_rows AS MATERIALIZED (
    -- business_hours is read once, for the stores in scope only
    SELECT store_zones.store_key, store_zones.timezone, day_of_week, start_sec, end_sec
    FROM business_hours
    JOIN store_zones USING (store_id)
),
weekly_hours AS (
    SELECT * FROM stores_weekly_rows
    UNION ALL
    -- a store without business hours is open 24x7: a 24-hour window every day
    SELECT store_zones.store_key, store_zones.timezone, days.day_of_week, 0, 0
    FROM store_zones
    CROSS JOIN (SELECT range::TINYINT AS day_of_week FROM range(7)) AS days
    ANTI JOIN stores_weekly_rows USING (store_key)
),
local_dates AS (
    -- every local date whose windows can reach into the covered span (a window starting on
    -- date D ends before D + 2, and local dates are within a day of UTC dates)
    SELECT range::DATE AS local_date, (isodow(range::DATE) - 1)::TINYINT AS day_of_week
    FROM range($covers_from::DATE - INTERVAL 2 DAY, $covers_to::DATE + INTERVAL 2 DAY, INTERVAL 1 DAY)
),
special_rows AS (
    -- the valid special rows of the dates in reach; a row without times only closes its date
    SELECT store_zones.store_key, store_zones.timezone, special_hours.local_date,
           special_hours.start_sec, special_hours.end_sec
    FROM special_hours
    JOIN store_zones USING (store_id)
    SEMI JOIN local_dates USING (local_date)
),
dated_hours AS (
    -- the weekly rows on each date without special rows, and the special rows of the others
    SELECT weekly_hours.store_key, weekly_hours.timezone, local_dates.local_date,
           weekly_hours.start_sec, weekly_hours.end_sec
    FROM weekly_hours
    JOIN local_dates USING (day_of_week)
    ANTI JOIN special_rows USING (store_key, local_date)
    UNION ALL
    SELECT store_key, timezone, local_date, start_sec, end_sec
    FROM special_rows
    WHERE start_sec IS NOT NULL
),
local_windows AS (
    -- [start, end) in wall-clock time; end <= start runs overnight into the next date
    SELECT
        row_number() OVER () AS window_id,
        store_key,
        timezone,
        local_date + to_seconds(start_sec) AS local_start,
        local_date + to_seconds(
            CASE WHEN end_sec > start_sec THEN end_sec ELSE end_sec + 86400 END
        ) AS local_end
    FROM dated_hours
),
window_ends AS (
    -- both ends of every window, one row each
    SELECT window_id, store_key, timezone, true AS is_start, local_start AS local_time
    FROM local_windows
    UNION ALL
    SELECT window_id, store_key, timezone, false AS is_start, local_end AS local_time
    FROM local_windows
),
wall_clock_boundaries AS (
    SELECT DISTINCT timezone, local_time FROM window_ends
),
utc_boundaries AS (
    -- the first instant at which the wall clock reads local_time or later: within each piece of
    -- constant offset that is max(piece start, local_time - offset), if still inside the piece;
    -- the earliest over the pieces is the answer (earlier instant in a repeated hour, the jump
    -- instant in a skipped hour)
    SELECT
        boundaries.timezone,
        boundaries.local_time,
        min(greatest(
            offsets.valid_from,
            boundaries.local_time - to_seconds(offsets.utc_offset_sec)
        )) AS utc_time
    FROM wall_clock_boundaries AS boundaries
    JOIN zone_offsets AS offsets
        ON offsets.timezone = boundaries.timezone
        AND boundaries.local_time - to_seconds(offsets.utc_offset_sec) < offsets.valid_to
    GROUP BY boundaries.timezone, boundaries.local_time
),
utc_windows AS (
    SELECT
        window_ends.store_key,
        max(utc_boundaries.utc_time) FILTER (WHERE window_ends.is_start) AS window_start,
        max(utc_boundaries.utc_time) FILTER (WHERE NOT window_ends.is_start) AS window_end
    FROM window_ends
    JOIN utc_boundaries USING (timezone, local_time)
    GROUP BY window_ends.window_id, window_ends.store_key
),
covered_windows AS (
    SELECT *
    FROM utc_windows
    WHERE window_end > window_start  -- e.g. 02:15-02:45 on a spring-forward night is empty
      AND window_end > $covers_from
      AND window_start <= $covers_to
),
ordered_windows AS (
    SELECT
        *,
        max(window_end) OVER (
            PARTITION BY store_key ORDER BY window_start, window_end
            ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING
        ) AS latest_end_before
    FROM covered_windows
),
islands AS (
    -- overlapping or touching windows form one island of business time
    SELECT
        *,
        sum(CASE WHEN window_start <= latest_end_before THEN 0 ELSE 1 END) OVER (
            PARTITION BY store_key ORDER BY window_start, window_end
            ROWS UNBOUNDED PRECEDING
        ) AS island
    FROM ordered_windows
)
SELECT store_key, min(window_start) AS window_start, max(window_end) AS window_end
FROM islands
GROUP BY store_key, island
ORDER BY store_key, window_start;
