-- Settle the days a chunk of the settlement computed (engine/settled.py): each a local day
-- period computed as of the latest poll (sla_sequences, sla_values and sla_down_pieces of
-- sla_values.sql and sla_incidents.sql, for the store-periods the narrowing kept: whole days
-- from each store's settle_from on, ended by $settle_until). A day is kept when a poll of its
-- sequence at or after its end determines it (the polls after that do not change it), and
-- the days kept of a store follow each other from its settle_from. Appends to sla_days,
-- sla_day_downtime and the temp table settled_now(store_key, local_date).
CREATE OR REPLACE TEMP TABLE settled_chunk AS
WITH days AS (
    SELECT
        sequences.period_id,
        sequences.store_key,
        specs.period_from::DATE AS local_date,
        sequences.period_start AS day_start,
        sequences.period_to AS day_end,
        sequences.all_polls,
        scope.settle_from
    FROM sla_sequences AS sequences
    JOIN sla_period_specs AS specs USING (period_id)
    JOIN settle_scope AS scope USING (store_key)
),
with_dependency AS (
    -- the last poll of the day's sequence at or before its start: what retention may take
    SELECT days.*, before.ts AS depends_from
    FROM days
    ASOF LEFT JOIN poll_spans AS before
        ON before.store_key = days.store_key
        AND before.all_polls = days.all_polls
        AND before.ts <= days.day_start
),
determined AS (
    SELECT with_dependency.*, after.ts AS determined_by
    FROM with_dependency
    ASOF JOIN poll_spans AS after
        ON after.store_key = with_dependency.store_key
        AND after.all_polls = with_dependency.all_polls
        AND after.ts >= with_dependency.day_end
),
consecutive AS (
    SELECT
        *,
        local_date - settle_from + 1
            = row_number() OVER (PARTITION BY store_key ORDER BY local_date) AS follows
    FROM determined
)
SELECT
    consecutive.period_id,
    consecutive.store_key,
    consecutive.local_date,
    consecutive.day_start,
    consecutive.day_end,
    sla_values.business_us,
    sla_values.uptime_us,
    consecutive.all_polls,
    consecutive.depends_from,
    consecutive.determined_by
FROM consecutive
JOIN sla_values USING (period_id, store_key)
WHERE consecutive.follows;

INSERT INTO sla_days
SELECT store_key, local_date, day_start, day_end, business_us, uptime_us, all_polls,
       depends_from, determined_by
FROM settled_chunk
ORDER BY store_key, local_date;

INSERT INTO sla_day_downtime
SELECT pieces.store_key, settled_chunk.local_date, pieces.incident_start_us,
       pieces.incident_end_us, pieces.business_us
FROM sla_down_pieces AS pieces
JOIN settled_chunk USING (period_id, store_key)
ORDER BY pieces.store_key, pieces.incident_start_us;

INSERT INTO settled_now
SELECT store_key, local_date FROM settled_chunk;
