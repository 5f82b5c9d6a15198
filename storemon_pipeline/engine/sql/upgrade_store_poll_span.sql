-- A database of an earlier version: stores without their first and last poll.
ALTER TABLE stores ADD COLUMN first_poll TIMESTAMP;
ALTER TABLE stores ADD COLUMN last_poll TIMESTAMP;
UPDATE stores
SET first_poll = spans.first_poll, last_poll = spans.last_poll
FROM (
    SELECT store_key, min(ts) AS first_poll, max(ts) AS last_poll FROM polls GROUP BY store_key
) AS spans
WHERE stores.store_key = spans.store_key;
DELETE FROM stores WHERE first_poll IS NULL;
