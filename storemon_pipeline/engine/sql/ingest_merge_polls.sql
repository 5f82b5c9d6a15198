-- Add the valid polls of the current file to `polls`: one row per (store, instant);
-- when statuses disagree, inactive wins, whatever the order the rows arrived in
-- (docs/semantics.md §1.2). Keeps each store's first and last poll in `stores`.
-- each store of the file once, with its first and last valid poll in it
CREATE OR REPLACE TEMP TABLE incoming_stores AS
SELECT store_id, min(ts) AS first_poll, max(ts) AS last_poll
FROM ingest_checked
WHERE reason IS NULL
GROUP BY store_id;

INSERT INTO stores
SELECT
    (SELECT coalesce(max(store_key), 0) FROM stores) + row_number() OVER (ORDER BY store_id),
    store_id,
    first_poll,
    last_poll
FROM incoming_stores
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

-- The incoming polls that change what is stored: new ones, and inactive ones whose stored twin
-- is active (inactive wins). A re-delivered poll that changes nothing is not among them.
CREATE OR REPLACE TEMP TABLE changed_polls AS
SELECT incoming.store_key, incoming.ts, incoming.is_active, stored.ts IS NOT NULL AS is_stored
FROM incoming_polls AS incoming
LEFT JOIN (
    SELECT store_key, ts, is_active
    FROM polls
    WHERE ts BETWEEN getvariable('incoming_from') AND getvariable('incoming_to')
) AS stored
    ON stored.store_key = incoming.store_key AND stored.ts = incoming.ts
WHERE stored.ts IS NULL OR (stored.is_active AND NOT incoming.is_active);

UPDATE polls
SET is_active = false
FROM changed_polls AS changed
WHERE changed.is_stored
  AND polls.store_key = changed.store_key
  AND polls.ts = changed.ts
  AND polls.ts BETWEEN getvariable('incoming_from') AND getvariable('incoming_to');

-- in store order: a file's polls then fill row groups of consecutive stores, so that the work
-- of a chunk of stores, or of one store, skips the others' row groups (their min/max)
INSERT INTO polls
SELECT store_key, ts, is_active
FROM changed_polls
WHERE NOT is_stored
ORDER BY store_key, ts;

-- Every stored report partition as of the first changed poll or later may now be another
-- report for the store (docs/semantics.md §2.12).
INSERT INTO history_backlog
SELECT store_key, min(ts), now()::TIMESTAMP
FROM changed_polls
GROUP BY store_key
ON CONFLICT (store_key) DO UPDATE
SET changed_from = least(changed_from, excluded.changed_from), noted_at = excluded.noted_at;

-- The settled days (engine/settled.py) that the changed polls may change are settled again:
-- a store's days from the first one determined by a poll at or after its first change, or
-- from the first one interpolated over all its polls (a poll in hours changes which polls it
-- interpolates). Its other days are what they were.
CREATE OR REPLACE TEMP TABLE unsettled_stores AS
WITH changes AS (
    SELECT store_key, min(ts) AS changed_from FROM changed_polls GROUP BY store_key
),
changed_days AS (
    SELECT sla_days.store_key, sla_days.local_date
    FROM sla_days
    JOIN changes USING (store_key)
    WHERE sla_days.determined_by >= changes.changed_from
      -- rows are settled day after day: the older row groups are skipped
      AND sla_days.determined_by >= getvariable('incoming_from')
    UNION ALL
    SELECT sla_days.store_key, sla_days.local_date
    FROM sla_days
    SEMI JOIN changes USING (store_key)
    WHERE sla_days.all_polls
)
SELECT store_key, min(local_date) AS from_date
FROM changed_days
GROUP BY store_key;

DELETE FROM sla_days
USING unsettled_stores AS unsettled
WHERE sla_days.store_key = unsettled.store_key AND sla_days.local_date >= unsettled.from_date;

DELETE FROM sla_day_downtime
USING unsettled_stores AS unsettled
WHERE sla_day_downtime.store_key = unsettled.store_key
  AND sla_day_downtime.local_date >= unsettled.from_date;

UPDATE sla_days_span
SET next_date = unsettled.from_date
FROM unsettled_stores AS unsettled
WHERE sla_days_span.store_key = unsettled.store_key;

-- a store left without settled days settles again from its first poll's month
DELETE FROM sla_days_span WHERE next_date <= first_date;

UPDATE stores
SET first_poll = least(stores.first_poll, incoming.first_poll),
    last_poll = greatest(stores.last_poll, incoming.last_poll)
FROM incoming_stores AS incoming
WHERE stores.store_id = incoming.store_id
  AND (incoming.first_poll < stores.first_poll OR incoming.last_poll > stores.last_poll);

-- What earlier searches found about the polls before some instant is untrue for a store that
-- has just received a poll before that instant.
DELETE FROM search_memo
USING (
    SELECT stores.store_key, incoming_stores.first_poll
    FROM incoming_stores
    JOIN stores USING (store_id)
) AS incoming
WHERE search_memo.store_key = incoming.store_key
  AND incoming.first_poll < search_memo.searched_before;
