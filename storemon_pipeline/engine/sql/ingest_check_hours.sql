-- Business-hours rows of the current file, each either valid or with the reason it is rejected.
CREATE OR REPLACE TEMP TABLE ingest_checked AS
WITH fields AS (
    SELECT
        line,
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
    line,
    store_id,
    day_of_week,
    start_sec,
    end_sec,
    CASE
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
