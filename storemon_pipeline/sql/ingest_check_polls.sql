-- Poll rows of the current file, each either valid or with the reason it is rejected.
CREATE OR REPLACE TEMP TABLE ingest_checked AS
WITH fields AS (
    SELECT
        line,
        raw,
        well_quoted,
        len(cells) = 3 AS right_field_count,
        cells[$store_id_pos] AS store_id,
        lower(cells[$status_pos]) AS status,
        regexp_extract(
            cells[$timestamp_pos],
            '^(\d{4}-\d{2}-\d{2})[Tt ](\d{2}:\d{2}:\d{2})(\.\d{1,6})?\d* ?(UTC|utc|Z|z|[+-]\d{2}:?\d{2})?$',
            ['day', 'clock', 'fraction', 'zone']
        ) AS ts_parts
    FROM ingest_lines
),
parsed AS (
    SELECT
        *,
        try_cast(ts_parts.day || ' ' || ts_parts.clock || ts_parts.fraction AS TIMESTAMP)
            - CASE
                WHEN ts_parts.zone SIMILAR TO '[+-].*' THEN
                    (CASE WHEN ts_parts.zone[1] = '-' THEN -1 ELSE 1 END)
                    * (to_hours(try_cast(ts_parts.zone[2:3] AS INTEGER))
                       + to_minutes(try_cast(right(ts_parts.zone, 2) AS INTEGER)))
                ELSE INTERVAL 0 SECOND
            END AS ts
    FROM fields
)
SELECT
    line,
    raw,
    store_id,
    ts,
    status = 'active' AS is_active,
    CASE
        WHEN NOT well_quoted THEN 'malformed_quoting'
        WHEN NOT right_field_count THEN 'wrong_field_count'
        WHEN NOT regexp_full_match(store_id, '[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}')
            THEN 'invalid_store_id'
        WHEN status NOT IN ('active', 'inactive') THEN 'invalid_status'
        WHEN ts IS NULL THEN 'invalid_timestamp'
    END AS reason
FROM parsed;
