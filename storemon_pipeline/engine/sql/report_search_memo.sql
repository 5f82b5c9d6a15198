-- After the search before the look-back (engine/report.py): what an earlier search remembered
-- completes what this one found (searched_stores: the stores searched, down to search_down_to;
-- prior_polls: what was found), and what is now known before $horizon is remembered.
INSERT INTO prior_polls
SELECT search_memo.store_key, search_memo.last_in_hours_ts, search_memo.last_in_hours_active,
       false
FROM search_memo
SEMI JOIN searched_stores ON searched_stores.store_key = search_memo.store_key
    AND searched_stores.remembered
WHERE search_memo.last_in_hours_ts IS NOT NULL
  AND search_memo.searched_before <= $horizon
  AND search_memo.store_key NOT IN (
      SELECT store_key FROM prior_polls WHERE NOT all_polls
  );

INSERT INTO prior_polls
SELECT search_memo.store_key, search_memo.last_ts, search_memo.last_active, true
FROM search_memo
SEMI JOIN searched_stores ON searched_stores.store_key = search_memo.store_key
    AND searched_stores.remembered
WHERE search_memo.last_ts IS NOT NULL
  AND search_memo.searched_before <= $horizon
  AND search_memo.store_key NOT IN (SELECT store_key FROM prior_polls WHERE all_polls);

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
