-- The stores whose next local days may be settled (engine/settled.py), as the temp table
-- settle_scope(store_key, store_id, first_poll, settle_from): every store polled by the latest
-- poll, from the first date it has not settled (sla_days_span), or, with none settled, from the
-- first day of the calendar month and of the ISO week of its first poll's UTC date (the first
-- poll owns the time before it, so the month and the week it began in can be read from
-- settled days too; a store polled first in the first hours of a month west of UTC, the
-- month before's last day, has that month read from its polls), but not before
-- $earliest_date; only those whose first such date may have ended by $settle_until (a local
-- date ends at the earliest 14 hours before the UTC date of the same name does).
CREATE OR REPLACE TEMP TABLE settle_scope AS
WITH next_dates AS (
    SELECT
        stores.store_key,
        stores.store_id,
        stores.first_poll,
        greatest(
            coalesce(
                span.next_date,
                least(
                    date_trunc('month', stores.first_poll::DATE),
                    date_trunc('week', stores.first_poll::DATE)
                )::DATE
            ),
            $earliest_date::DATE
        ) AS settle_from
    FROM stores
    LEFT JOIN sla_days_span AS span USING (store_key)
    WHERE stores.first_poll <= $latest_poll
)
SELECT *
FROM next_dates
WHERE settle_from::TIMESTAMP + INTERVAL 10 HOUR <= $settle_until::TIMESTAMP;
