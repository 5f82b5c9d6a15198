-- The partitions in withheld_partitions broke the blocking check $check: readers of the history
-- leave them out (the first check to fail names them) until history_save.sql replaces them.
UPDATE history.uptime_report_partitions
SET withheld_by = coalesce(withheld_by, $check)
WHERE partition_hour IN (SELECT partition_hour FROM withheld_partitions);
