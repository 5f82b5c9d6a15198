-- Time-zone rows of the current file, each either valid or with the reason it is rejected.
-- A store named twice with different zones is ambiguous: all its rows are rejected and the
-- store falls back to the default zone.
CREATE OR REPLACE TEMP TABLE ingest_checked AS
WITH fields AS (
    SELECT
        line,
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
            WHEN NOT well_quoted THEN 'malformed_quoting'
            WHEN NOT right_field_count THEN 'wrong_field_count'
            WHEN NOT regexp_full_match(store_id, $store_id_pattern)
                THEN 'invalid_store_id'
            WHEN timezone NOT IN (SELECT timezone FROM known_timezones) THEN 'invalid_timezone'
        END AS first_reason
    FROM fields
)
SELECT
    line,
    store_id,
    timezone,
    coalesce(
        first_reason,
        CASE
            WHEN min(timezone) FILTER (WHERE first_reason IS NULL) OVER same_store
                <> max(timezone) FILTER (WHERE first_reason IS NULL) OVER same_store
            THEN 'conflicting_timezone'
        END
    ) AS reason,
    -- the raw line is kept for the quarantine only
    CASE WHEN reason IS NOT NULL THEN raw END AS raw
FROM checked
WINDOW same_store AS (PARTITION BY store_id);
