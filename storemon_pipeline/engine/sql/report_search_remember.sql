-- What is now known of the searched stores' polls before $horizon is remembered, in place of
-- what was remembered before it (engine/report.py; not by a read-only reader).
DELETE FROM search_memo
WHERE store_key IN (SELECT store_key FROM searched_stores)
  AND searched_before <= $horizon;

INSERT INTO search_memo
SELECT
    searched_stores.store_key,
    $horizon,
    in_hours.ts,
    in_hours.is_active,
    last_poll.ts,
    last_poll.is_active
FROM searched_stores
LEFT JOIN prior_polls AS in_hours
    ON in_hours.store_key = searched_stores.store_key AND NOT in_hours.all_polls
LEFT JOIN prior_polls AS last_poll
    ON last_poll.store_key = searched_stores.store_key AND last_poll.all_polls
ANTI JOIN search_memo ON search_memo.store_key = searched_stores.store_key;
