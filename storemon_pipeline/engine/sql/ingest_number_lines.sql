-- The check queries (ingest_check_*.sql) read a file's lines in parallel and keep the file's
-- order: a line's number is its row's position in ingest_checked (rowid + 1, no row deleted
-- yet), unless the check numbered its lines itself. Only the rejected rows need it (the
-- quarantine names them); the header (line 1, never a valid row) and the empty lines then go.
UPDATE ingest_checked SET line = rowid + 1 WHERE reason IS NOT NULL AND line IS NULL;

DELETE FROM ingest_checked WHERE line = 1 OR reason = 'blank';
