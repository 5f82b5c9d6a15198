-- Poll rows of the current file, each either valid or with the reason it is rejected.
CREATE OR REPLACE TEMP TABLE ingest_checked AS
WITH fields AS (
    SELECT
        raw,
        well_quoted,
        len(cells) = $field_count AS right_field_count,
        trim_cell(cells[$store_id_pos]) AS store_id,
        cells[$status_pos] AS status_text,
        trim_cell(cells[$timestamp_pos]) AS ts_text
    FROM csv_lines($path, $encoding)
),
parsed AS (
    SELECT
        *,
        CASE status_text
            WHEN 'active' THEN true
            WHEN 'inactive' THEN false
            ELSE CASE lower(trim_cell(status_text)) WHEN 'active' THEN true WHEN 'inactive' THEN false END
        END AS is_active,
        -- a plain cast is the fast parser; the pattern keeps it strict (no date-only values),
        -- and an explicit non-UTC offset is converted to UTC
        CASE
            WHEN NOT regexp_full_match(
                ts_text,
                '\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}(\.\d{1,9})?( ?UTC| ?utc|Z|[+-]\d{2}(:?\d{2})?)?'
            ) THEN NULL
            -- matched, it has an offset if it holds a '+', or a '-' after its date: cheaper
            -- than a second pattern
            WHEN contains(ts_text, '+') OR contains(ts_text[11:], '-')
                THEN timezone('UTC', try_cast(ts_text AS TIMESTAMPTZ))
            ELSE try_cast(ts_text AS TIMESTAMP)
        END AS ts
    FROM fields
)
SELECT
    NULL::BIGINT AS line,  -- numbered by ingest_number_lines.sql
    store_id,
    ts,
    is_active,
    CASE
        WHEN raw IS NULL THEN 'blank'  -- an empty line: no row (ingest_number_lines.sql)
        WHEN NOT well_quoted THEN 'malformed_quoting'
        WHEN NOT right_field_count THEN 'wrong_field_count'
        WHEN NOT regexp_full_match(store_id, $store_id_pattern)
            THEN 'invalid_store_id'
        WHEN is_active IS NULL THEN 'invalid_status'
        -- an instant a report cannot represent (docs/semantics.md §1.3)
        WHEN ts IS NULL OR ts < $first_valid_ts OR ts >= $end_valid_ts THEN 'invalid_timestamp'
        -- later than the ingest's clock plus the allowed skew: a device with a wrong clock
        WHEN ts > $not_after THEN 'future_timestamp'
    END AS reason,
    -- the raw line is kept for the quarantine only
    CASE WHEN reason IS NOT NULL THEN raw END AS raw
FROM parsed;
