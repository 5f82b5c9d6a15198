-- Special-hours rows of the current file, each either valid or with the reason it is rejected
-- (docs/semantics.md §1.1, §2.16). Both times empty: the store is closed that date.
CREATE OR REPLACE TEMP TABLE ingest_checked AS
WITH fields AS (
    SELECT
        line,
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
clock_parts AS (
    SELECT
        *,
        start_text = '' AND end_text = '' AS closed_all_day,
        regexp_extract(start_text, '^(\d{1,2}):(\d{2})(?::(\d{2}))?$', ['h', 'm', 's']) AS start_parts,
        regexp_extract(end_text, '^(\d{1,2}):(\d{2})(?::(\d{2}))?$', ['h', 'm', 's']) AS end_parts
    FROM fields
),
clock_numbers AS (
    SELECT
        *,
        try_cast(start_parts.h AS INTEGER) AS start_h,
        try_cast(start_parts.m AS INTEGER) AS start_m,
        coalesce(try_cast(nullif(start_parts.s, '') AS INTEGER), 0) AS start_s,
        try_cast(end_parts.h AS INTEGER) AS end_h,
        try_cast(end_parts.m AS INTEGER) AS end_m,
        coalesce(try_cast(nullif(end_parts.s, '') AS INTEGER), 0) AS end_s
    FROM clock_parts
),
parsed AS (
    SELECT
        *,
        CASE
            WHEN regexp_full_match(date_text, '\d{4}-\d{2}-\d{2}')
            THEN try_cast(date_text AS DATE)
        END AS parsed_date,
        CASE
            WHEN start_h <= 23 AND start_m <= 59 AND start_s <= 59
            THEN start_h * 3600 + start_m * 60 + start_s
        END AS start_sec,
        CASE
            WHEN end_h = 24 AND end_m = 0 AND end_s = 0 THEN 86400  -- 24:00 ends the day
            WHEN end_h <= 23 AND end_m <= 59 AND end_s <= 59
            THEN end_h * 3600 + end_m * 60 + end_s
        END AS end_sec
    FROM clock_numbers
),
checked AS (
    SELECT
        line,
        raw,
        store_id,
        parsed_date AS local_date,
        start_sec,
        end_sec,
        reason_text,
        CASE
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
    line,
    store_id,
    local_date,
    start_sec,
    end_sec,
    reason_text,
    reason,
    -- the raw line is kept for the quarantine only
    CASE WHEN reason IS NOT NULL THEN raw END AS raw
FROM checked;
