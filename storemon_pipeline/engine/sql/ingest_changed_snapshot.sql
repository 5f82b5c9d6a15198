-- A new snapshot of {table} (its valid rows in ingest_checked) about to replace the stored one:
-- every stored report partition of a store whose rows differ (added, removed or changed) may now
-- be another report for it, back to its first poll (docs/semantics.md §2.12). Filled in by
-- engine/ingest.py with the table and its columns.
INSERT INTO history_backlog
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
SELECT stores.store_key, stores.first_poll, now()::TIMESTAMP
FROM stores
SEMI JOIN changed_stores USING (store_id)
ON CONFLICT (store_key) DO UPDATE
SET changed_from = least(changed_from, excluded.changed_from), noted_at = excluded.noted_at;
