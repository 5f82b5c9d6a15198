-- The polls one store's timeline shows (docs/semantics.md §2.7-§2.8), each with whether the
-- report used it: the polls of its week (from $week_start to the as-of), and the used poll
-- before the week whose span reaches into it. Reads the temp tables compute_reports left for
-- this one store and as-of (store_reports, lookback_polls, poll_spans).
WITH chosen_sequence AS (
    SELECT all_polls FROM store_reports WHERE store_key = $store_key
),
used_polls AS (
    SELECT poll_spans.ts, poll_spans.is_active
    FROM poll_spans
    JOIN chosen_sequence USING (all_polls)
    WHERE poll_spans.store_key = $store_key
      AND poll_spans.span_end_us > epoch_us($week_start::TIMESTAMP)
),
week_polls AS (
    SELECT ts, is_active
    FROM lookback_polls
    WHERE store_key = $store_key AND ts >= $week_start
)
SELECT
    shown.ts,
    shown.is_active,
    used_polls.ts IS NOT NULL AS used
FROM (SELECT * FROM week_polls UNION SELECT * FROM used_polls) AS shown
LEFT JOIN used_polls USING (ts, is_active)
ORDER BY shown.ts, shown.is_active;
