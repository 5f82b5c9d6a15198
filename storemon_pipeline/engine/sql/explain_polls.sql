-- The polls the timelines of a batch of stores show (docs/semantics.md §2.7-§2.8), each with
-- whether the report used it: the polls of the store's week (from $week_start to the as-of),
-- and the used poll before the week whose span reaches into it. Reads the temp tables
-- compute_reports left for these stores and one as-of (store_reports, lookback_polls,
-- poll_spans).
WITH used_polls AS (
    SELECT poll_spans.store_key, poll_spans.ts, poll_spans.is_active
    FROM poll_spans
    JOIN store_reports USING (store_key, all_polls)  -- the sequence the store used
    WHERE poll_spans.span_end_us > epoch_us($week_start::TIMESTAMP)
),
week_polls AS (
    SELECT store_key, ts, is_active
    FROM lookback_polls
    WHERE ts >= $week_start
)
SELECT
    shown.store_key,
    shown.ts,
    shown.is_active,
    used_polls.ts IS NOT NULL AS used
FROM (SELECT * FROM week_polls UNION SELECT * FROM used_polls) AS shown
LEFT JOIN used_polls USING (store_key, ts, is_active)
ORDER BY shown.store_key, shown.ts, shown.is_active
