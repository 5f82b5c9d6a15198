-- One store's status over the week [$week_start, $as_of) as the report interpolates it
-- (docs/semantics.md §2.8): the spans of the polls of the sequence it used, clipped to the week,
-- equal neighbours merged into runs. Reads compute_reports' temp tables (store_reports,
-- poll_spans, report_windows) for this one store and as-of. Instants in microseconds since the
-- epoch.
CREATE OR REPLACE TEMP TABLE store_runs AS
WITH chosen_sequence AS (
    SELECT all_polls FROM store_reports WHERE store_key = $store_key
),
week_spans AS (
    SELECT
        poll_spans.is_active,
        greatest(poll_spans.span_start_us, epoch_us($week_start::TIMESTAMP)) AS start_us,
        least(poll_spans.span_end_us, epoch_us($as_of::TIMESTAMP)) AS end_us
    FROM poll_spans
    JOIN chosen_sequence USING (all_polls)
    WHERE poll_spans.store_key = $store_key
      AND poll_spans.span_end_us > epoch_us($week_start::TIMESTAMP)
      AND poll_spans.span_start_us < epoch_us($as_of::TIMESTAMP)
),
numbered_runs AS (
    -- a run of equal statuses starts where the status differs from the span before
    SELECT
        *,
        sum(CASE WHEN is_active IS DISTINCT FROM previous_active THEN 1 ELSE 0 END)
            OVER (ORDER BY start_us ROWS UNBOUNDED PRECEDING) AS run
    FROM (SELECT *, lag(is_active) OVER (ORDER BY start_us) AS previous_active FROM week_spans)
)
SELECT min(start_us) AS start_us, max(end_us) AS end_us, any_value(is_active) AS is_active
FROM numbered_runs
GROUP BY run
HAVING max(end_us) > min(start_us);

-- The store's business time in the week split by status: its windows cut by the runs (both
-- disjoint). What the report's uptime and downtime add up from.
CREATE OR REPLACE TEMP TABLE store_segments AS
WITH week_windows AS (
    SELECT
        greatest(epoch_us(window_start), epoch_us($week_start::TIMESTAMP)) AS start_us,
        least(epoch_us(window_end), epoch_us($as_of::TIMESTAMP)) AS end_us
    FROM report_windows
    WHERE store_key = $store_key AND window_end > $week_start AND window_start < $as_of
)
SELECT
    greatest(week_windows.start_us, store_runs.start_us) AS start_us,
    least(week_windows.end_us, store_runs.end_us) AS end_us,
    store_runs.is_active
FROM week_windows
JOIN store_runs
    ON store_runs.start_us < week_windows.end_us
    AND store_runs.end_us > week_windows.start_us;
