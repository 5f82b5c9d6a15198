-- Fill shard $shard of $shards (a new, empty file) with its rows of the old shards, seen through
-- the views source_* (engine/shards.py attach_shards, store keys unique across old shards).
INSERT INTO stores
SELECT
    row_number() OVER (ORDER BY store_id)::INTEGER AS store_key,
    store_id,
    min(first_poll),
    max(last_poll)
FROM source_stores
WHERE shard_of(store_id, $shards) = $shard
GROUP BY store_id;

INSERT INTO polls
SELECT stores.store_key, source_polls.ts, source_polls.is_active
FROM source_polls
JOIN source_stores USING (store_key)
JOIN stores ON stores.store_id = source_stores.store_id;

-- the snapshots in store order, as the ingest stores them (engine/ingest.py)
INSERT INTO business_hours
SELECT * FROM source_business_hours WHERE shard_of(store_id, $shards) = $shard
ORDER BY store_id;

INSERT INTO special_hours
SELECT * FROM source_special_hours WHERE shard_of(store_id, $shards) = $shard
ORDER BY store_id;

INSERT INTO timezones
SELECT * FROM source_timezones WHERE shard_of(store_id, $shards) = $shard
ORDER BY store_id;

INSERT INTO quarantine
SELECT * FROM source_quarantine WHERE shard_of(file_sha256 || ':' || line, $shards) = $shard;

-- Every shard knows every file (a file loads once per shard); the row counts, which the shards
-- had each for their part, are kept whole in shard 0 so that the shards' sums stay true.
INSERT INTO ingest_manifest
SELECT
    file_sha256,
    feed,
    file,
    max(loaded_at),
    CASE WHEN $shard = 0 THEN sum(rows_read) ELSE 0 END,
    CASE WHEN $shard = 0 THEN sum(rows_loaded) ELSE 0 END,
    CASE WHEN $shard = 0 THEN sum(rows_duplicate) ELSE 0 END,
    CASE WHEN $shard = 0 THEN sum(rows_rejected) ELSE 0 END
FROM source_ingest_manifest
GROUP BY file_sha256, feed, file;

-- The stores whose stored report partitions are still to be brought up to date.
INSERT INTO history_backlog
SELECT stores.store_key, min(source_history_backlog.changed_from),
       max(source_history_backlog.noted_at)
FROM source_history_backlog
JOIN source_stores USING (store_key)
JOIN stores ON stores.store_id = source_stores.store_id
GROUP BY stores.store_key;

-- The alerts of the shard's stores, their events (delivered or not) and their posts: evaluations and delivery
-- go on from them where they are kept (one file).
INSERT INTO alerts
SELECT source_alerts.* REPLACE (stores.store_key::INTEGER AS store_key)
FROM source_alerts
JOIN stores ON stores.store_id = source_alerts.store_id;

INSERT INTO alert_outbox
SELECT source_alert_outbox.*
FROM source_alert_outbox
JOIN source_alerts USING (alert_id)
WHERE shard_of(source_alerts.store_id, $shards) = $shard;

INSERT INTO alert_delivery_attempts
SELECT source_alert_delivery_attempts.*
FROM source_alert_delivery_attempts
JOIN source_alert_outbox USING (event_key)
JOIN source_alerts USING (alert_id)
WHERE shard_of(source_alerts.store_id, $shards) = $shard;
