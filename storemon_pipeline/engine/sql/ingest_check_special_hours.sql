-- Special-hours rows of the current file, each either valid or with the reason it is rejected
-- (docs/semantics.md §1.1, §2.16). Both times empty: the store is closed that date.
CREATE OR REPLACE TEMP TABLE ingest_checked AS
WITH fields AS (
    SELECT
        raw,
        well_quoted,
        len(cells) = $field_count AS right_field_count,
        trim_cell(cells[$store_id_pos]) AS store_id,
        trim_cell(cells[$date_pos]) AS date_text,
        trim_cell(cells[$start_pos]) AS start_text,
        trim_cell(cells[$end_pos]) AS end_text,
        nullif(trim(cells[$reason_pos]), '') AS reason_text  -- position 0: no such column
    FROM csv_lines($path, $encoding)
),
parsed AS (
    SELECT
        *,
        start_text = '' AND end_text = '' AS closed_all_day,
        CASE
            WHEN regexp_full_match(date_text, '\d{4}-\d{2}-\d{2}')
            THEN try_cast(date_text AS DATE)
        END AS parsed_date,
        clock_seconds(start_text, false) AS start_sec,
        clock_seconds(end_text, true) AS end_sec
    FROM fields
),
checked AS (
    SELECT
        raw,
        store_id,
        parsed_date AS local_date,
        start_sec,
        end_sec,
        reason_text,
        CASE
            WHEN raw IS NULL THEN 'blank'  -- an empty line: no row (ingest_number_lines.sql)
            WHEN NOT well_quoted THEN 'malformed_quoting'
            WHEN NOT right_field_count THEN 'wrong_field_count'
            WHEN NOT regexp_full_match(store_id, $store_id_pattern) THEN 'invalid_store_id'
            -- the dates a report can reach (docs/semantics.md §1.3)
            WHEN parsed_date IS NULL OR year(parsed_date) NOT BETWEEN 1970 AND 2099
                THEN 'invalid_date'
            WHEN closed_all_day THEN NULL
            WHEN start_sec IS NULL THEN 'invalid_start_time'
            WHEN end_sec IS NULL THEN 'invalid_end_time'
        END AS reason
    FROM parsed
)
SELECT
    NULL::BIGINT AS line,  -- numbered by ingest_number_lines.sql
    store_id,
    local_date,
    start_sec,
    end_sec,
    reason_text,
    reason,
    -- the raw line is kept for the quarantine only
    CASE WHEN reason IS NOT NULL THEN raw END AS raw
FROM checked;
