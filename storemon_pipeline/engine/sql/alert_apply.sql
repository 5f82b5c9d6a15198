-- Apply alert_decisions (alert_decide.sql) to the table alerts and write one outbox row per
-- opened or resolved alert (docs/semantics.md §2.18), in the caller's transaction. Needs
-- zone_offsets covering the instants named (for the local times of the message).

UPDATE alerts
SET down_since = decisions.down_since,
    business_us_down = decisions.business_us,
    evaluated_as_of = $as_of::TIMESTAMP
FROM alert_decisions AS decisions
WHERE alerts.alert_id = decisions.alert_id AND decisions.action = 'updated';

UPDATE alerts
SET state = 'resolved',
    down_since = decisions.down_since,
    resolved_at = decisions.resolved_at,
    resolved_as_of = $as_of::TIMESTAMP,
    business_us_down = decisions.business_us,
    evaluated_as_of = $as_of::TIMESTAMP
FROM alert_decisions AS decisions
WHERE alerts.alert_id = decisions.alert_id AND decisions.action = 'resolved';

INSERT INTO alerts
SELECT
    alert_id, store_key, store_id, 'open', down_since, $as_of::TIMESTAMP, NULL, NULL,
    business_us, $as_of::TIMESTAMP
FROM alert_decisions
WHERE action = 'opened';

INSERT INTO alert_outbox (
    event_key, alert_id, event, payload, created_as_of, created_at, next_attempt_at
)
WITH events AS (
    SELECT
        decisions.*,
        coalesce(timezones.timezone, $default_timezone) AS timezone,
        two_decimals(decisions.business_us, 60000000) AS minutes_text
    FROM alert_decisions AS decisions
    LEFT JOIN timezones USING (store_id)
    WHERE decisions.action IN ('opened', 'resolved')
),
local_times AS (
    -- the store's wall clock at down_since and resolved_at: a zone's pieces of constant
    -- offset are disjoint, so one holds each instant (none for an instant that is NULL)
    SELECT
        events.*,
        strftime(events.down_since + to_seconds(down_offsets.utc_offset_sec), '%Y-%m-%d %H:%M')
            AS local_down_since,
        strftime(
            events.resolved_at + to_seconds(resolved_offsets.utc_offset_sec), '%Y-%m-%d %H:%M'
        ) AS local_resolved_at
    FROM events
    LEFT JOIN zone_offsets AS down_offsets
        ON down_offsets.timezone = events.timezone
        AND down_offsets.valid_from <= events.down_since
        AND events.down_since < down_offsets.valid_to
    LEFT JOIN zone_offsets AS resolved_offsets
        ON resolved_offsets.timezone = events.timezone
        AND resolved_offsets.valid_from <= events.resolved_at
        AND events.resolved_at < resolved_offsets.valid_to
),
messages AS (
    SELECT
        local_times.*,
        CASE WHEN action = 'opened' THEN
            'Store ' || store_id || ' is down since ' || local_down_since || ' ' || timezone
            || ' (' || strftime(down_since, '%Y-%m-%d %H:%M') || ' UTC): ' || minutes_text
            || ' business minutes so far'
        ELSE
            'Store ' || store_id || ' is back up at ' || local_resolved_at || ' ' || timezone
            || ' (' || strftime(resolved_at, '%Y-%m-%d %H:%M') || ' UTC) after '
            || minutes_text || ' business minutes down since ' || local_down_since
        END AS text
    FROM local_times
)
SELECT
    alert_id || ':' || action,
    alert_id,
    action,
    json_object(
        'event', action,
        'alert_id', alert_id,
        'store_id', store_id,
        'down_since', iso_utc(down_since),
        'resolved_at', CASE WHEN resolved_at IS NOT NULL THEN iso_utc(resolved_at) END,
        'business_minutes_down', minutes_text::DOUBLE,
        'timezone', timezone,
        'text', text
    )::VARCHAR,
    $as_of::TIMESTAMP,
    (now() AT TIME ZONE 'UTC')::TIMESTAMP,
    (now() AT TIME ZONE 'UTC')::TIMESTAMP
FROM messages
ORDER BY store_id, action
ON CONFLICT (event_key) DO NOTHING;
