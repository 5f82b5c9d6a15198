-- The status of each store of a batch over the week [$week_start, $as_of) as the report
-- interpolates it (docs/semantics.md §2.8), and its business time split by status: what the
-- report's uptime and downtime add up from. Reads compute_reports' temp tables (store_reports,
-- poll_spans, report_windows) for one as-of. Instants in microseconds since the epoch.
-- kind 'run': the spans of the polls of the sequence the store used, clipped to the week,
-- equal neighbours merged; kind 'segment': the store's windows cut by its runs (both disjoint).
WITH week_spans AS (
    SELECT
        poll_spans.store_key,
        poll_spans.is_active,
        greatest(poll_spans.span_start_us, epoch_us($week_start::TIMESTAMP)) AS start_us,
        least(poll_spans.span_end_us, epoch_us($as_of::TIMESTAMP)) AS end_us
    FROM poll_spans
    JOIN store_reports USING (store_key, all_polls)  -- the sequence the store used
    WHERE poll_spans.span_end_us > epoch_us($week_start::TIMESTAMP)
      AND poll_spans.span_start_us < epoch_us($as_of::TIMESTAMP)
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
SELECT store_key, 'run' AS kind, make_timestamp(start_us), make_timestamp(end_us), is_active
FROM store_runs
UNION ALL
SELECT store_key, 'segment', make_timestamp(start_us), make_timestamp(end_us), is_active
FROM store_segments
ORDER BY ALL
