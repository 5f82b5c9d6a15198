-- Make room for the new rows of the stores in revised_stores(store_id) in the stored partitions
-- of saved_partitions(partition_hour, as_of), computed at each partition's stored as-of (they
-- follow with history_insert_rows.sql, then history_revise_totals.sql).
DELETE FROM history.uptime_report
WHERE partition_hour IN (SELECT partition_hour FROM saved_partitions)
  AND store_id IN (SELECT store_id FROM revised_stores);
