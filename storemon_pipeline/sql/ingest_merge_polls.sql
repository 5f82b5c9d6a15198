-- Add the valid polls of the current file to `polls`: one row per (store, instant);
-- when statuses disagree, inactive wins, whatever the order the rows arrived in.
INSERT INTO stores
SELECT
    (SELECT coalesce(max(store_key), 0) FROM stores) + row_number() OVER (ORDER BY store_id),
    store_id
FROM (SELECT DISTINCT store_id FROM ingest_checked WHERE reason IS NULL)
ANTI JOIN stores USING (store_id);

CREATE OR REPLACE TEMP TABLE incoming_polls AS
SELECT stores.store_key, ingest_checked.ts, bool_and(ingest_checked.is_active) AS is_active
FROM ingest_checked
JOIN stores USING (store_id)
WHERE ingest_checked.reason IS NULL
GROUP BY stores.store_key, ingest_checked.ts;

UPDATE polls
SET is_active = false
FROM incoming_polls AS incoming
WHERE polls.store_key = incoming.store_key
  AND polls.ts = incoming.ts
  AND polls.is_active
  AND NOT incoming.is_active;

INSERT INTO polls
SELECT incoming.store_key, incoming.ts, incoming.is_active
FROM incoming_polls AS incoming
ANTI JOIN polls ON polls.store_key = incoming.store_key AND polls.ts = incoming.ts;
