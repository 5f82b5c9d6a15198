-- Tables of the storemon DuckDB file. Times are UTC TIMESTAMPs (microseconds).
-- Every store that has polls, with a small integer key: sorting and joining millions of polls
-- on an integer is about twice as fast as on a 19-character text id. Its first and last poll
-- are kept up to date by each ingest, so that a report finds the stores it reports (a poll at
-- or before its as-of) without reading the history.
CREATE TABLE IF NOT EXISTS stores (
    store_key  INTEGER   NOT NULL,
    store_id   VARCHAR   NOT NULL,
    first_poll TIMESTAMP NOT NULL,
    last_poll  TIMESTAMP NOT NULL
);

CREATE TABLE IF NOT EXISTS polls (
    store_key INTEGER   NOT NULL,  -- stores.store_key
    ts        TIMESTAMP NOT NULL,
    is_active BOOLEAN   NOT NULL
);

CREATE TABLE IF NOT EXISTS business_hours (
    store_id    VARCHAR  NOT NULL,
    day_of_week TINYINT  NOT NULL,  -- 0 = Monday ... 6 = Sunday
    start_sec   INTEGER  NOT NULL,  -- seconds after local midnight
    end_sec     INTEGER  NOT NULL   -- 86400 for 24:00
);

-- Dates on which a store keeps other hours than its weekly ones (docs/semantics.md §2.16): a
-- date with rows here has these windows instead of its weekly rows. A row without times closes
-- the date (a date with such a row and windows has the windows).
CREATE TABLE IF NOT EXISTS special_hours (
    store_id   VARCHAR NOT NULL,
    local_date DATE    NOT NULL,  -- the store's local date
    start_sec  INTEGER,           -- seconds after local midnight; NULL with end_sec: closed
    end_sec    INTEGER,           -- 86400 for 24:00
    reason     VARCHAR            -- free text, e.g. holiday
);

CREATE TABLE IF NOT EXISTS timezones (
    store_id VARCHAR NOT NULL,
    timezone VARCHAR NOT NULL
);

CREATE TABLE IF NOT EXISTS quarantine (
    feed        VARCHAR   NOT NULL,
    file        VARCHAR   NOT NULL,
    file_sha256 VARCHAR   NOT NULL,
    line        BIGINT    NOT NULL,
    raw         VARCHAR,
    reason      VARCHAR   NOT NULL,
    loaded_at   TIMESTAMP NOT NULL
);

CREATE TABLE IF NOT EXISTS ingest_manifest (
    file_sha256    VARCHAR   NOT NULL,
    feed           VARCHAR   NOT NULL,
    file           VARCHAR   NOT NULL,
    loaded_at      TIMESTAMP NOT NULL,
    rows_read      BIGINT    NOT NULL,
    rows_loaded    BIGINT    NOT NULL,
    rows_duplicate BIGINT    NOT NULL,
    rows_rejected  BIGINT    NOT NULL
);

-- Business time as merged, non-overlapping UTC intervals [window_start, window_end) per store,
-- over the span the report as of the latest poll needs (reports build their own windows).
CREATE TABLE IF NOT EXISTS business_windows (
    store_key    INTEGER   NOT NULL,  -- stores.store_key
    window_start TIMESTAMP NOT NULL,
    window_end   TIMESTAMP NOT NULL
);

-- What the search before a report's look-back found (engine/report.py), so that the next report
-- reads only the polls that arrived since: "among this store's polls before searched_before,
-- the last in-hours poll is ... (NULL: none) and the last poll is ...". An ingest forgets the
-- rows that new polls older than searched_before, a new hours or time-zone snapshot, or the
-- retention make untrue.
CREATE TABLE IF NOT EXISTS search_memo (
    store_key            INTEGER   NOT NULL,
    searched_before      TIMESTAMP NOT NULL,
    last_in_hours_ts     TIMESTAMP,
    last_in_hours_active BOOLEAN,
    last_ts              TIMESTAMP,
    last_active          BOOLEAN
);

-- Stores whose stored report partitions may no longer be the reports of the data
-- (docs/semantics.md §2.12): polls that arrived late or turned a stored poll inactive, or a new
-- hours or time-zone snapshot that changed the store's rows. changed_from is the earliest as-of
-- whose report may differ. The next report run recomputes those partitions for these stores and
-- then forgets the rows (engine/history.py: converge_history).
CREATE TABLE IF NOT EXISTS history_backlog (
    store_key    INTEGER   PRIMARY KEY,  -- stores.store_key
    changed_from TIMESTAMP NOT NULL,
    noted_at     TIMESTAMP NOT NULL      -- the last ingest that changed the row
);

-- Tables of earlier versions, now derived elsewhere: the report history lives in
-- history.duckdb (engine/history.py), and reports build their own business windows.
DROP TABLE IF EXISTS uptime_report;
DROP TABLE IF EXISTS business_windows_coverage;
