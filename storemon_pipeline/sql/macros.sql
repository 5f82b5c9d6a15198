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

-- trim() is slow over millions of cells and almost none need it.
CREATE OR REPLACE TEMP MACRO trim_cell(cell) AS
    CASE WHEN starts_with(cell, ' ') OR ends_with(cell, ' ') THEN trim(cell) ELSE cell END;
