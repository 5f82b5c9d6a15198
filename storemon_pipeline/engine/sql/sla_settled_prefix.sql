-- The settled days (sla_days) that each store-period takes instead of reading its polls
-- (docs/semantics.md §2.17): the days that tile the period from its start, one after the other,
-- each determined by a poll at or before the period's as-of (a settled day is what the polls up
-- to its determining poll make it, whatever the as-of after that). The rest of the period, from
-- counted_from on, is computed from the polls. $use_settled false: no day is taken.
-- Needs sla_store_periods (sla_periods.sql); makes sla_settled_prefix(period_id, store_key,
-- counted_from, business_us, uptime_us, first_date, last_date) and adds counted_from to
-- sla_store_periods (its period_start when no day is taken).
CREATE OR REPLACE TEMP TABLE sla_settled_prefix AS
WITH usable_days AS (
    -- a store's settled days are consecutive dates, each ending where the next begins, and
    -- determined by polls that come later and later: those a period can take are consecutive
    -- too, and tile it from its start when the first of them begins there
    SELECT
        periods.period_id,
        periods.store_key,
        periods.period_start,
        days.local_date,
        days.day_start,
        days.day_end,
        days.business_us,
        days.uptime_us
    FROM sla_store_periods AS periods
    JOIN sla_days AS days
        ON days.store_key = periods.store_key
        AND days.day_start >= periods.period_start
        AND days.day_end <= periods.period_end
        AND days.determined_by <= periods.as_of
    WHERE $use_settled
)
SELECT
    period_id,
    store_key,
    max(day_end) AS counted_from,
    sum(business_us)::BIGINT AS business_us,
    sum(uptime_us)::BIGINT AS uptime_us,
    min(local_date) AS first_date,
    max(local_date) AS last_date
FROM usable_days
GROUP BY period_id, store_key, period_start
HAVING min(day_start) = period_start;

CREATE OR REPLACE TEMP TABLE sla_store_periods AS
SELECT
    periods.*,
    coalesce(prefix.counted_from, periods.period_start) AS counted_from
FROM sla_store_periods AS periods
LEFT JOIN sla_settled_prefix AS prefix USING (period_id, store_key);
