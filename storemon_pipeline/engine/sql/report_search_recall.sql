-- After the search before the look-back (engine/report.py): what an earlier search remembered
-- completes what this one found (searched_stores: the stores searched, down to search_down_to;
-- prior_polls: what was found).
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
