-- The weeks [$week_start, $as_of) of the stores of a batch as the report made them
-- (docs/semantics.md §2.7-§2.8, §2.15), one row per item, in the order the timeline shows them:
--   'poll'     ts in start: the store's polls of the week, and the used poll before the week
--              whose span reaches into it, each with whether the report used it
--   'run'      the store's status, the spans of the polls of the sequence it used clipped to
--              the week, equal neighbours merged
--   'segment'  the store's business time split by status: its windows cut by its runs (both
--              disjoint), what the report's uptime and downtime add up from
--   'window'   the store's business windows, clipped to the week
-- Reads the temp tables compute_reports leaves for these stores and one as-of (store_reports,
-- lookback_polls, poll_spans, report_windows). Instants in microseconds since the epoch.
WITH chosen_spans AS (
    -- the spans of the polls of the sequence each store used
    SELECT poll_spans.*
    FROM poll_spans
    JOIN store_reports USING (store_key, all_polls)
),
used_polls AS (
    SELECT store_key, ts, is_active
    FROM chosen_spans
    WHERE span_end_us > epoch_us($week_start::TIMESTAMP)
),
shown_polls AS (
    SELECT store_key, ts, is_active FROM lookback_polls WHERE ts >= $week_start
    UNION
    SELECT * FROM used_polls
),
week_spans AS (
    SELECT
        store_key,
        is_active,
        greatest(span_start_us, epoch_us($week_start::TIMESTAMP)) AS start_us,
        least(span_end_us, epoch_us($as_of::TIMESTAMP)) AS end_us
    FROM chosen_spans
    WHERE span_end_us > epoch_us($week_start::TIMESTAMP)
      AND span_start_us < epoch_us($as_of::TIMESTAMP)
),
numbered_runs AS (
    -- a run of equal statuses starts where the status differs from the span before
    SELECT
        *,
        sum(CASE WHEN is_active IS DISTINCT FROM previous_active THEN 1 ELSE 0 END)
            OVER (PARTITION BY store_key ORDER BY start_us ROWS UNBOUNDED PRECEDING) AS run
    FROM (
        SELECT *, lag(is_active) OVER (PARTITION BY store_key ORDER BY start_us) AS previous_active
        FROM week_spans
    )
),
store_runs AS (
    SELECT store_key, min(start_us) AS start_us, max(end_us) AS end_us,
           any_value(is_active) AS is_active
    FROM numbered_runs
    GROUP BY store_key, run
    HAVING max(end_us) > min(start_us)
),
week_windows AS (
    SELECT
        store_key,
        greatest(epoch_us(window_start), epoch_us($week_start::TIMESTAMP)) AS start_us,
        least(epoch_us(window_end), epoch_us($as_of::TIMESTAMP)) AS end_us
    FROM report_windows
    WHERE window_end > $week_start AND window_start < $as_of
),
store_segments AS (
    SELECT
        week_windows.store_key,
        greatest(week_windows.start_us, store_runs.start_us) AS start_us,
        least(week_windows.end_us, store_runs.end_us) AS end_us,
        store_runs.is_active
    FROM week_windows
    JOIN store_runs
        ON store_runs.store_key = week_windows.store_key
        AND store_runs.start_us < week_windows.end_us
        AND store_runs.end_us > week_windows.start_us
)
SELECT
    shown_polls.store_key, 'poll' AS kind, shown_polls.ts AS start, NULL::TIMESTAMP AS "end",
    shown_polls.is_active, used_polls.ts IS NOT NULL AS used
FROM shown_polls
LEFT JOIN used_polls USING (store_key, ts, is_active)
UNION ALL
SELECT store_key, 'run', make_timestamp(start_us), make_timestamp(end_us), is_active, NULL
FROM store_runs
UNION ALL
SELECT store_key, 'segment', make_timestamp(start_us), make_timestamp(end_us), is_active, NULL
FROM store_segments
UNION ALL
SELECT store_key, 'window', make_timestamp(start_us), make_timestamp(end_us), NULL, NULL
FROM week_windows
ORDER BY store_key, kind, start, is_active, "end"
