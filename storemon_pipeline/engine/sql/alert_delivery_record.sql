-- Record one delivery round (engine/delivery.py, record_attempts): per event tried, the
-- webhooks that acknowledged it added; delivered once every configured webhook has; otherwise
-- due again after its back-off wait, or given up (dead) once older than the retry limit.
-- Inputs: round_attempts (event_key, acknowledged VARCHAR[], error, wait_us), $now, $urls,
-- $max_us.

UPDATE alert_outbox AS event
SET attempts = event.attempts + 1,
    delivered_to = tried.delivered_to,
    delivered_at = CASE WHEN tried.complete THEN $now::TIMESTAMP END,
    last_error = coalesce(tried.error, event.last_error),
    next_attempt_at = $now::TIMESTAMP + to_microseconds(tried.wait_us),
    dead_at = CASE
        WHEN NOT tried.complete
         AND $now::TIMESTAMP >= event.created_at + to_microseconds($max_us::BIGINT)
        THEN $now::TIMESTAMP END
FROM (
    SELECT
        round_attempts.event_key,
        round_attempts.error,
        round_attempts.wait_us,
        list_distinct(list_concat(stored.delivered_to, round_attempts.acknowledged))
            AS delivered_to,
        list_has_all(
            list_concat(stored.delivered_to, round_attempts.acknowledged), $urls::VARCHAR[]
        ) AS complete
    FROM round_attempts
    JOIN alert_outbox AS stored USING (event_key)
) AS tried
WHERE event.event_key = tried.event_key;
