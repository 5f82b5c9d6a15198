-- Every line of one CSV file with its line number, split into cells.
-- DuckDB reads the file as whole lines (no delimiter, no quoting) so that line numbers and
-- raw text survive for the quarantine; cells are then split here. Only lines with a quote
-- take the slower path that honours "quoted, cells" (and "" inside them).
CREATE OR REPLACE TEMP TABLE ingest_lines AS
WITH raw_lines AS (
    SELECT row_number() OVER () AS line, raw
    FROM read_csv(
        $path,
        columns = {'raw': 'VARCHAR'},
        header = false,
        delim = $no_delimiter,
        quote = '',
        escape = '',
        auto_detect = false,
        encoding = $encoding,
        compression = 'auto'
    )
),
split_lines AS (
    SELECT
        line,
        raw,
        CASE
            WHEN contains(raw, '"') THEN regexp_extract_all(raw || ',', '("(?:[^"]|"")*"|[^,"]*),', 1)
        END AS quoted_cells
    FROM raw_lines
    WHERE line > 1 AND raw IS NOT NULL  -- DuckDB reads an empty line as NULL
)
SELECT
    line,
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
