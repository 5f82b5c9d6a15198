-- Small helpers shared by the report queries (temporary: they live with the connection).

-- Microseconds of [part_start, part_end) at or after period_start.
CREATE OR REPLACE TEMP MACRO overlap_us(part_start, part_end, period_start) AS
    greatest(0, date_diff('microsecond', greatest(part_start, period_start), part_end));

-- A duration in microseconds as text in units of unit_us, rounded half up to 2 decimals,
-- computed on integers so no binary fraction ever rounds the wrong way.
CREATE OR REPLACE TEMP MACRO two_decimals(duration_us, unit_us) AS
    printf(
        '%d.%02d',
        ((duration_us * 100 + unit_us // 2) // unit_us) // 100,
        ((duration_us * 100 + unit_us // 2) // unit_us) % 100
    );

-- numerator / denominator as text with 2 decimals, rounded half up, on integers (a mean of
-- microseconds in minutes, a share in percent: docs/semantics.md §2.17).
CREATE OR REPLACE TEMP MACRO two_decimals_ratio(numerator, denominator) AS
    printf(
        '%d.%02d',
        ((numerator::HUGEINT * 200 + denominator) // (2 * denominator::HUGEINT)) // 100,
        ((numerator::HUGEINT * 200 + denominator) // (2 * denominator::HUGEINT)) % 100
    );

-- A naive UTC instant as ISO-8601 text with its offset, as Python's isoformat() writes it
-- (the fraction only when there is one): 2023-03-01T06:00:00+00:00.
CREATE OR REPLACE TEMP MACRO iso_utc(instant) AS
    strftime(instant, '%Y-%m-%dT%H:%M:%S')
    || CASE WHEN epoch_us(instant) % 1000000 = 0 THEN ''
            ELSE '.' || lpad((epoch_us(instant) % 1000000)::VARCHAR, 6, '0') END
    || '+00:00';

-- The six values of the report CSV (docs/semantics.md §2.9-§2.10) from uptime and business
-- microseconds: minutes for the hour, hours for day and week. unnest() it into columns.
CREATE OR REPLACE TEMP MACRO csv_values(
    uptime_hour_us, uptime_day_us, uptime_week_us, business_hour_us, business_day_us, business_week_us
) AS {
    'uptime_last_hour': two_decimals(uptime_hour_us, 60000000),
    'uptime_last_day': two_decimals(uptime_day_us, 3600000000),
    'uptime_last_week': two_decimals(uptime_week_us, 3600000000),
    'downtime_last_hour': two_decimals(business_hour_us - uptime_hour_us, 60000000),
    'downtime_last_day': two_decimals(business_day_us - uptime_day_us, 3600000000),
    'downtime_last_week': two_decimals(business_week_us - uptime_week_us, 3600000000)
};

-- A running sum read at x_us (business_cumulative, reading_pieces, uptime_cumulative): the
-- sum before the piece [start_us, end_us) that an ASOF join found at or before x_us, plus the
-- part of that piece before x_us; 0 when no piece starts at or before x_us.
CREATE OR REPLACE TEMP MACRO cumulative_at(before_us, start_us, end_us, x_us) AS
    coalesce(before_us + least(x_us, end_us) - start_us, 0);

-- One key for a reading of a store's sequence at an instant (report_readings.sql): the report
-- joins four readings per row on it, and a single key keeps the planner from joining the
-- readings with each other.
CREATE OR REPLACE TEMP MACRO reading_key(store, seq, instant) AS
    (store::BIGINT << 32) | (instant::BIGINT << 1) | seq::BIGINT;

-- trim() is slow over millions of cells and almost none need it.
CREATE OR REPLACE TEMP MACRO trim_cell(cell) AS
    CASE WHEN starts_with(cell, ' ') OR ends_with(cell, ' ') THEN trim(cell) ELSE cell END;

-- Seconds after local midnight of a wall-clock time HH:MM or HH:MM:SS (docs/semantics.md §1.1),
-- NULL when the text is none; 24:00 (86400, the end of the day) only when is_end.
CREATE OR REPLACE TEMP MACRO clock_seconds_of(parts, is_end) AS
    CASE
        WHEN is_end AND parts.h = '24' AND parts.m = '00' AND parts.s IN ('', '00') THEN 86400
        WHEN try_cast(parts.h AS INTEGER) <= 23 AND try_cast(parts.m AS INTEGER) <= 59
             AND coalesce(try_cast(nullif(parts.s, '') AS INTEGER), 0) <= 59
        THEN try_cast(parts.h AS INTEGER) * 3600 + try_cast(parts.m AS INTEGER) * 60
             + coalesce(try_cast(nullif(parts.s, '') AS INTEGER), 0)
    END;
CREATE OR REPLACE TEMP MACRO clock_seconds(clock_text, is_end) AS
    clock_seconds_of(
        regexp_extract(clock_text, '^(\d{1,2}):(\d{2})(?::(\d{2}))?$', ['h', 'm', 's']), is_end
    );

-- Every line of a CSV file, in the file's order, split into cells: the header, and an empty
-- line as a NULL raw, included. DuckDB reads the file as whole lines (no delimiter, no quoting)
-- in parallel, so that the raw text survives for the quarantine; cells are then split here.
-- Only lines with a quote take the slower path that honours "quoted, cells" (and "" inside
-- them). A line's number is its row's position (ingest_number_lines.sql): a row_number() here
-- would read the file on one thread.
CREATE OR REPLACE TEMP MACRO csv_lines(csv_path, text_encoding) AS TABLE
    WITH raw_lines AS (
        SELECT raw
        FROM read_csv(
            csv_path,
            columns = {'raw': 'VARCHAR'},
            header = false,
            delim = chr(0),
            quote = '',
            escape = '',
            auto_detect = false,
            encoding = text_encoding,
            compression = 'auto'
        )
    ),
    split_lines AS (
        SELECT
            raw,
            CASE
                WHEN contains(raw, '"') THEN regexp_extract_all(raw || ',', '("(?:[^"]|"")*"|[^,"]*),', 1)
            END AS quoted_cells
        FROM raw_lines
    )
    SELECT
        raw,
        -- a quoted line is well formed when its cells put back together give the whole line
        quoted_cells IS NULL OR length(array_to_string(quoted_cells, ',')) = length(raw) AS well_quoted,
        CASE
            WHEN quoted_cells IS NULL THEN string_split(raw, ',')
            ELSE list_transform(
                quoted_cells,
                lambda cell: CASE
                    WHEN starts_with(cell, '"') THEN replace(cell[2:-2], '""', '"')
                    ELSE cell
                END
            )
        END AS cells
    FROM split_lines;

-- The shard of a key (docs/semantics.md §2.14): the first 32 bits of its MD5, modulo the number
-- of shards. engine/shards.py computes the same in Python.
CREATE OR REPLACE TEMP MACRO shard_of(key, shards) AS
    ('0x' || left(md5(key), 8))::UBIGINT % shards;
