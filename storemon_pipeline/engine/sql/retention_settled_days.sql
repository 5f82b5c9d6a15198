-- Retention dropped the polls before $cutoff: the settled days (engine/settled.py) that began
-- before it, or that a dropped poll began (its last poll at or before the day's start), are
-- no longer what the polls make them (a store left without polls had only such days). They
-- are the first days of their store, so the others still follow each other.
CREATE OR REPLACE TEMP TABLE expired_settled_days AS
SELECT store_key, local_date
FROM sla_days
WHERE day_start < $cutoff OR depends_from < $cutoff;

DELETE FROM sla_days
USING expired_settled_days AS expired
WHERE sla_days.store_key = expired.store_key AND sla_days.local_date = expired.local_date;

DELETE FROM sla_day_downtime
USING expired_settled_days AS expired
WHERE sla_day_downtime.store_key = expired.store_key
  AND sla_day_downtime.local_date = expired.local_date;

-- each store's span starts at its first day left; a store without any starts anew
CREATE OR REPLACE TEMP TABLE expired_spans AS
SELECT span.store_key, min(sla_days.local_date) AS first_date
FROM sla_days_span AS span
SEMI JOIN expired_settled_days USING (store_key)
LEFT JOIN sla_days USING (store_key)
GROUP BY span.store_key;

DELETE FROM sla_days_span
WHERE store_key IN (SELECT store_key FROM expired_spans WHERE first_date IS NULL);

UPDATE sla_days_span
SET first_date = expired_spans.first_date
FROM expired_spans
WHERE sla_days_span.store_key = expired_spans.store_key AND expired_spans.first_date IS NOT NULL;

DROP TABLE expired_settled_days;
DROP TABLE expired_spans;
