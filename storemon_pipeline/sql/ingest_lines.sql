-- Every line of one CSV file with its line number, split into cells.
-- DuckDB reads the file as whole lines (no delimiter, no quoting) so that line numbers and
-- raw text survive for the quarantine; cells are then split here, honouring "quoted" cells.
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
            WHEN NOT contains(raw, '"') THEN string_split(raw, ',')
            ELSE regexp_extract_all(raw || ',', '("(?:[^"]|"")*"|[^,"]*),', 1)
        END AS raw_cells
    FROM raw_lines
    WHERE line > 1 AND trim(coalesce(raw, '')) <> ''
)
SELECT
    line,
    raw,
    -- a quoted line is well formed when its cells put back together give the whole line
    NOT contains(raw, '"') OR length(array_to_string(raw_cells, ',')) = length(raw) AS well_quoted,
    list_transform(
        raw_cells,
        lambda cell: trim(
            CASE
                WHEN starts_with(cell, '"') THEN replace(cell[2:-2], '""', '"')
                ELSE cell
            END
        )
    ) AS cells
FROM split_lines;
