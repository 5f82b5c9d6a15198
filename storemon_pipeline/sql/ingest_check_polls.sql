-- Poll rows of the current file, each either valid or with the reason it is rejected.
CREATE OR REPLACE TEMP TABLE ingest_checked AS
WITH fields AS (
    SELECT
        line,
        raw,
        well_quoted,
        len(cells) = 3 AS right_field_count,
        trim_cell(cells[$store_id_pos]) AS store_id,
        cells[$status_pos] AS status_text,
        trim_cell(cells[$timestamp_pos]) AS ts_text
    FROM ingest_lines
),
parsed AS (
    SELECT
        *,
        CASE status_text
            WHEN 'active' THEN true
            WHEN 'inactive' THEN false
            ELSE CASE lower(trim_cell(status_text)) WHEN 'active' THEN true WHEN 'inactive' THEN false END
        END AS is_active,
        coalesce(
            try_strptime(ts_text, [
                '%Y-%m-%d %H:%M:%S.%f UTC', '%Y-%m-%d %H:%M:%S UTC',
                '%Y-%m-%dT%H:%M:%S.%fZ', '%Y-%m-%dT%H:%M:%SZ',
                '%Y-%m-%d %H:%M:%S.%f', '%Y-%m-%d %H:%M:%S',
                '%Y-%m-%dT%H:%M:%S.%f', '%Y-%m-%dT%H:%M:%S'
            ]),
            -- an explicit offset (+00:00, or any other) is converted to UTC
            timezone('UTC', try_strptime(ts_text, [
                '%Y-%m-%dT%H:%M:%S.%f%z', '%Y-%m-%dT%H:%M:%S%z',
                '%Y-%m-%d %H:%M:%S.%f%z', '%Y-%m-%d %H:%M:%S%z'
            ]))
        ) AS ts
    FROM fields
)
SELECT
    line,
    raw,
    store_id,
    ts,
    is_active,
    CASE
        WHEN NOT well_quoted THEN 'malformed_quoting'
        WHEN NOT right_field_count THEN 'wrong_field_count'
        WHEN NOT regexp_full_match(store_id, '[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}')
            THEN 'invalid_store_id'
        WHEN is_active IS NULL THEN 'invalid_status'
        WHEN ts IS NULL THEN 'invalid_timestamp'
    END AS reason
FROM parsed;
