-- After the search before the look-back (engine/report.py): what an earlier search remembered
-- completes what this one found (searched_stores: the stores searched, down to search_down_to;
-- prior_polls: what was found), and what is now known before $horizon is remembered.
INSERT INTO prior_polls
SELECT search_memo.store_key, search_memo.last_in_hours_ts, search_memo.last_in_hours_active,
       'in_hours'
FROM search_memo
SEMI JOIN searched_stores ON searched_stores.store_key = search_memo.store_key
    AND searched_stores.remembered
WHERE search_memo.last_in_hours_ts IS NOT NULL
  AND search_memo.searched_before <= $horizon
  AND search_memo.store_key NOT IN (
      SELECT store_key FROM prior_polls WHERE sequence = 'in_hours'
  );

INSERT INTO prior_polls
SELECT search_memo.store_key, search_memo.last_ts, search_memo.last_active, 'all'
FROM search_memo
SEMI JOIN searched_stores ON searched_stores.store_key = search_memo.store_key
    AND searched_stores.remembered
WHERE search_memo.last_ts IS NOT NULL
  AND search_memo.searched_before <= $horizon
  AND search_memo.store_key NOT IN (SELECT store_key FROM prior_polls WHERE sequence = 'all');

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
    ON in_hours.store_key = searched_stores.store_key AND in_hours.sequence = 'in_hours'
LEFT JOIN prior_polls AS last_poll
    ON last_poll.store_key = searched_stores.store_key AND last_poll.sequence = 'all'
ANTI JOIN search_memo ON search_memo.store_key = searched_stores.store_key;
