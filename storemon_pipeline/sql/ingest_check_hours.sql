-- Business-hours rows of the current file, each either valid or with the reason it is rejected.
CREATE OR REPLACE TEMP TABLE ingest_checked AS
WITH fields AS (
    SELECT
        line,
        raw,
        well_quoted,
        len(cells) = 4 AS right_field_count,
        cells[$store_id_pos] AS store_id,
        cells[$day_pos] AS day_text,
        regexp_extract(cells[$start_pos], '^(\d{1,2}):(\d{2})(?::(\d{2}))?$', ['h', 'm', 's'])
            AS start_parts,
        regexp_extract(cells[$end_pos], '^(\d{1,2}):(\d{2})(?::(\d{2}))?$', ['h', 'm', 's'])
            AS end_parts
    FROM ingest_lines
),
parsed AS (
    SELECT
        *,
        CASE WHEN regexp_full_match(day_text, '[0-6]') THEN day_text::TINYINT END AS day_of_week,
        CASE
            WHEN start_parts.h <> ''
                AND start_parts.h::INTEGER <= 23
                AND start_parts.m::INTEGER <= 59
                AND coalesce(nullif(start_parts.s, ''), '0')::INTEGER <= 59
            THEN start_parts.h::INTEGER * 3600 + start_parts.m::INTEGER * 60
                + coalesce(nullif(start_parts.s, ''), '0')::INTEGER
        END AS start_sec,
        CASE
            WHEN end_parts.h <> ''
                AND end_parts.h::INTEGER = 24
                AND end_parts.m::INTEGER = 0
                AND coalesce(nullif(end_parts.s, ''), '0')::INTEGER = 0
            THEN 86400
            WHEN end_parts.h <> ''
                AND end_parts.h::INTEGER <= 23
                AND end_parts.m::INTEGER <= 59
                AND coalesce(nullif(end_parts.s, ''), '0')::INTEGER <= 59
            THEN end_parts.h::INTEGER * 3600 + end_parts.m::INTEGER * 60
                + coalesce(nullif(end_parts.s, ''), '0')::INTEGER
        END AS end_sec
    FROM fields
)
SELECT
    line,
    raw,
    store_id,
    day_of_week,
    start_sec,
    end_sec,
    CASE
        WHEN NOT well_quoted THEN 'malformed_quoting'
        WHEN NOT right_field_count THEN 'wrong_field_count'
        WHEN NOT regexp_full_match(store_id, '[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}')
            THEN 'invalid_store_id'
        WHEN day_of_week IS NULL THEN 'invalid_day'
        WHEN start_sec IS NULL THEN 'invalid_start_time'
        WHEN end_sec IS NULL THEN 'invalid_end_time'
    END AS reason
FROM parsed;
