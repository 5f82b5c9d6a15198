-- The lines of the current file that DuckDB was never given (engine/textscan.py: a line too
-- long, control characters, bytes that are not UTF-8), each a rejected row with its reason and
-- its raw text, escaped and cut short. The rest of the file is already in ingest_checked.
INSERT INTO ingest_checked BY NAME
WITH hostile_lines AS (
    SELECT line, reason, raw
    FROM read_csv(
        $path,
        columns = {'line': 'BIGINT', 'reason': 'VARCHAR', 'raw': 'VARCHAR'},
        header = true,
        auto_detect = false,
        delim = ',',
        quote = '"',
        escape = '"'
    )
)
SELECT line, reason, raw
FROM hostile_lines;
