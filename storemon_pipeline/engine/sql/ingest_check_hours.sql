-- Business-hours rows of the current file, each either valid or with the reason it is rejected.
CREATE OR REPLACE TEMP TABLE ingest_checked AS
WITH fields AS (
    SELECT
        raw,
        well_quoted,
        len(cells) = $field_count AS right_field_count,
        trim_cell(cells[$store_id_pos]) AS store_id,
        trim_cell(cells[$day_pos]) AS day_text,
        clock_seconds(trim_cell(cells[$start_pos]), false) AS start_sec,
        clock_seconds(trim_cell(cells[$end_pos]), true) AS end_sec
    FROM csv_lines($path, $encoding)
),
parsed AS (
    SELECT
        *,
        CASE WHEN regexp_full_match(day_text, '[0-6]') THEN day_text::TINYINT END AS day_of_week
    FROM fields
)
SELECT
    NULL::BIGINT AS line,  -- numbered by ingest_number_lines.sql
    store_id,
    day_of_week,
    start_sec,
    end_sec,
    CASE
        WHEN raw IS NULL THEN 'blank'  -- an empty line: no row (ingest_number_lines.sql)
        WHEN NOT well_quoted THEN 'malformed_quoting'
        WHEN NOT right_field_count THEN 'wrong_field_count'
        WHEN NOT regexp_full_match(store_id, $store_id_pattern)
            THEN 'invalid_store_id'
        WHEN day_of_week IS NULL THEN 'invalid_day'
        WHEN start_sec IS NULL THEN 'invalid_start_time'
        WHEN end_sec IS NULL THEN 'invalid_end_time'
    END AS reason,
    -- the raw line is kept for the quarantine only
    CASE WHEN reason IS NOT NULL THEN raw END AS raw
FROM parsed;
