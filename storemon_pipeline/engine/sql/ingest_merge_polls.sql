-- Add the valid polls of the current file to `polls`: one row per (store, instant);
-- when statuses disagree, inactive wins, whatever the order the rows arrived in
-- (docs/semantics.md §1.2). Keeps each store's first and last poll in `stores`.
INSERT INTO stores
SELECT
    (SELECT coalesce(max(store_key), 0) FROM stores) + row_number() OVER (ORDER BY store_id),
    store_id,
    first_poll,
    last_poll
FROM (
    SELECT store_id, min(ts) AS first_poll, max(ts) AS last_poll
    FROM ingest_checked
    WHERE reason IS NULL
    GROUP BY store_id
)
ANTI JOIN stores USING (store_id);

CREATE OR REPLACE TEMP TABLE incoming_polls AS
SELECT stores.store_key, ingest_checked.ts, bool_and(ingest_checked.is_active) AS is_active
FROM ingest_checked
JOIN stores USING (store_id)
WHERE ingest_checked.reason IS NULL
GROUP BY stores.store_key, ingest_checked.ts;

-- Poll files usually cover a few hours: comparing only with stored polls in that time range
-- lets DuckDB skip most of a large table (min/max of each row group).
SET VARIABLE incoming_from = (SELECT min(ts) FROM incoming_polls);
SET VARIABLE incoming_to = (SELECT max(ts) FROM incoming_polls);

UPDATE polls
SET is_active = false
FROM incoming_polls AS incoming
WHERE polls.store_key = incoming.store_key
  AND polls.ts = incoming.ts
  AND polls.ts BETWEEN getvariable('incoming_from') AND getvariable('incoming_to')
  AND polls.is_active
  AND NOT incoming.is_active;

INSERT INTO polls
SELECT incoming.store_key, incoming.ts, incoming.is_active
FROM incoming_polls AS incoming
ANTI JOIN (
    SELECT store_key, ts
    FROM polls
    WHERE ts BETWEEN getvariable('incoming_from') AND getvariable('incoming_to')
) AS stored
    ON stored.store_key = incoming.store_key AND stored.ts = incoming.ts;

UPDATE stores
SET first_poll = least(stores.first_poll, incoming.first_poll),
    last_poll = greatest(stores.last_poll, incoming.last_poll)
FROM (
    SELECT store_key, min(ts) AS first_poll, max(ts) AS last_poll
    FROM incoming_polls
    GROUP BY store_key
) AS incoming
WHERE stores.store_key = incoming.store_key
  AND (incoming.first_poll < stores.first_poll OR incoming.last_poll > stores.last_poll);

-- What earlier searches found about the polls before some instant is untrue for a store that
-- has just received a poll before that instant.
DELETE FROM search_memo
USING (SELECT store_key, min(ts) AS first_poll FROM incoming_polls GROUP BY store_key) AS incoming
WHERE search_memo.store_key = incoming.store_key
  AND incoming.first_poll < search_memo.searched_before;
