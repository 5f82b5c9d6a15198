-- Time-zone rows of the current file, each either valid or with the reason it is rejected.
-- A store named twice with different zones is ambiguous: all its rows are rejected and the
-- store falls back to the default zone.
-- Its rows meet other rows (the known zones, the store's other rows), which does not keep the
-- file's order: its lines are numbered here, on one thread (a small feed).
CREATE OR REPLACE TEMP TABLE ingest_checked AS
WITH fields AS (
    SELECT
        row_number() OVER () AS line,
        raw,
        well_quoted,
        len(cells) = $field_count AS right_field_count,
        trim_cell(cells[$store_id_pos]) AS store_id,
        trim_cell(cells[$timezone_pos]) AS timezone
    FROM csv_lines($path, $encoding)
),
checked AS (
    SELECT
        fields.*,
        CASE
            WHEN raw IS NULL THEN 'blank'  -- an empty line: no row (ingest_number_lines.sql)
            WHEN NOT well_quoted THEN 'malformed_quoting'
            WHEN NOT right_field_count THEN 'wrong_field_count'
            WHEN NOT regexp_full_match(store_id, $store_id_pattern)
                THEN 'invalid_store_id'
            WHEN timezone NOT IN (SELECT timezone FROM known_timezones) THEN 'invalid_timezone'
        END AS first_reason
    FROM fields
),
conflicting_stores AS (
    SELECT store_id
    FROM checked
    WHERE first_reason IS NULL
    GROUP BY store_id
    HAVING min(timezone) <> max(timezone)
),
reasons AS (
    SELECT
        checked.*,
        coalesce(
            first_reason,
            CASE
                WHEN store_id IN (SELECT store_id FROM conflicting_stores)
                THEN 'conflicting_timezone'
            END
        ) AS reason
    FROM checked
)
SELECT
    line,
    store_id,
    timezone,
    reason,
    -- the raw line is kept for the quarantine only
    CASE WHEN reason IS NOT NULL THEN raw END AS raw
FROM reasons;
