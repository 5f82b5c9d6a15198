-- A new snapshot of {table} (its valid rows in ingest_checked) about to replace the stored one:
-- the stores whose rows differ (added, removed or changed). Every stored report partition of
-- such a store may now be another report for it, back to its first poll (docs/semantics.md
-- §2.12), and its settled days (engine/settled.py) other days: they are settled again. Filled
-- in by engine/ingest.py with the table and its columns.
CREATE OR REPLACE TEMP TABLE snapshot_changed_stores AS
WITH new_rows AS (
    SELECT DISTINCT {columns}
    FROM ingest_checked
    WHERE reason IS NULL
),
changed_stores AS (
    SELECT store_id FROM (SELECT {columns} FROM {table} EXCEPT SELECT * FROM new_rows)
    UNION
    SELECT store_id FROM (SELECT * FROM new_rows EXCEPT SELECT {columns} FROM {table})
)
SELECT stores.store_key, stores.first_poll
FROM stores
SEMI JOIN changed_stores USING (store_id);

INSERT INTO history_backlog
SELECT store_key, first_poll, now()::TIMESTAMP
FROM snapshot_changed_stores
ON CONFLICT (store_key) DO UPDATE
SET changed_from = least(changed_from, excluded.changed_from), noted_at = excluded.noted_at;

DELETE FROM sla_days WHERE store_key IN (SELECT store_key FROM snapshot_changed_stores);
DELETE FROM sla_day_downtime WHERE store_key IN (SELECT store_key FROM snapshot_changed_stores);
DELETE FROM sla_days_span WHERE store_key IN (SELECT store_key FROM snapshot_changed_stores);
