-- Add the valid polls of the current file to `polls`: one row per (store, instant);
-- when statuses disagree, inactive wins, whatever the order the rows arrived in.
CREATE OR REPLACE TEMP TABLE incoming_polls AS
SELECT store_id, ts, bool_and(is_active) AS is_active
FROM ingest_checked
WHERE reason IS NULL
GROUP BY store_id, ts;

UPDATE polls
SET is_active = false
FROM incoming_polls AS incoming
WHERE polls.store_id = incoming.store_id
  AND polls.ts = incoming.ts
  AND polls.is_active
  AND NOT incoming.is_active;

INSERT INTO polls
SELECT incoming.store_id, incoming.ts, incoming.is_active
FROM incoming_polls AS incoming
ANTI JOIN polls ON polls.store_id = incoming.store_id AND polls.ts = incoming.ts;
