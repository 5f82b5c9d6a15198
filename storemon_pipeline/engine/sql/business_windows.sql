-- Each reported store's business time as merged UTC intervals over [$covers_from, $covers_to)
-- (docs/semantics.md §2.4-§2.6).
-- Needs the temp table zone_offsets(timezone, valid_from, valid_to, utc_offset_sec).
CREATE OR REPLACE TEMP TABLE computed_business_windows AS
WITH store_zones AS (
    -- a store without a valid zone is in the default zone
    SELECT stores.store_key, stores.store_id, coalesce(timezones.timezone, $default_timezone) AS timezone
    FROM stores
    LEFT JOIN timezones USING (store_id)
),
weekly_hours AS (
    SELECT store_zones.store_key, day_of_week, start_sec, end_sec
    FROM business_hours
    JOIN store_zones USING (store_id)
    UNION ALL
    -- a store without business hours is open 24x7: a 24-hour window every day
    SELECT store_zones.store_key, days.day_of_week, 0, 0
    FROM store_zones
    CROSS JOIN (SELECT range::TINYINT AS day_of_week FROM range(7)) AS days
    ANTI JOIN business_hours USING (store_id)
),
local_dates AS (
    -- every local date whose windows can reach into the covered span, per zone in use
    SELECT zones.timezone, dates.local_date, (isodow(dates.local_date) - 1)::TINYINT AS day_of_week
    FROM (SELECT DISTINCT timezone FROM store_zones) AS zones
    CROSS JOIN (
        SELECT range::DATE AS local_date
        FROM range($covers_from::DATE - INTERVAL 2 DAY, $covers_to::DATE + INTERVAL 2 DAY, INTERVAL 1 DAY)
    ) AS dates
),
local_windows AS (
    -- [start, end) in wall-clock time; end <= start runs overnight into the next date
    SELECT
        weekly_hours.store_key,
        store_zones.timezone,
        local_dates.local_date + to_seconds(weekly_hours.start_sec) AS local_start,
        local_dates.local_date + to_seconds(
            CASE
                WHEN weekly_hours.end_sec > weekly_hours.start_sec THEN weekly_hours.end_sec
                ELSE weekly_hours.end_sec + 86400
            END
        ) AS local_end
    FROM weekly_hours
    JOIN store_zones USING (store_key)
    JOIN local_dates
        ON local_dates.timezone = store_zones.timezone
        AND local_dates.day_of_week = weekly_hours.day_of_week
),
wall_clock_boundaries AS (
    SELECT DISTINCT timezone, local_start AS local_time FROM local_windows
    UNION
    SELECT DISTINCT timezone, local_end AS local_time FROM local_windows
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
    SELECT local_windows.store_key, starts.utc_time AS window_start, ends.utc_time AS window_end
    FROM local_windows
    JOIN utc_boundaries AS starts
        ON starts.timezone = local_windows.timezone AND starts.local_time = local_windows.local_start
    JOIN utc_boundaries AS ends
        ON ends.timezone = local_windows.timezone AND ends.local_time = local_windows.local_end
    WHERE ends.utc_time > starts.utc_time
      AND ends.utc_time > $covers_from
      AND starts.utc_time < $covers_to
),
ordered_windows AS (
    SELECT
        *,
        max(window_end) OVER (
            PARTITION BY store_key ORDER BY window_start, window_end
            ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING
        ) AS latest_end_before
    FROM utc_windows
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
GROUP BY store_key, island;
