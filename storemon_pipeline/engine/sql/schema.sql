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
-- in store order, around the latest poll: what the reports read instead of building their
-- windows where it covers their span (engine/windows.py, keep_business_windows).
CREATE TABLE IF NOT EXISTS business_windows (
    store_key    INTEGER   NOT NULL,  -- stores.store_key
    window_start TIMESTAMP NOT NULL,
    window_end   TIMESTAMP NOT NULL
);

-- What business_windows holds (no row: nothing to read): the windows reaching into
-- [covers_from, covers_to] of every store up to the key stores_through, for the current hours,
-- zones and special hours. An ingest that changes one of them deletes this row.
CREATE TABLE IF NOT EXISTS business_windows_span (
    covers_from    TIMESTAMP NOT NULL,
    covers_to      TIMESTAMP NOT NULL,
    stores_through INTEGER   NOT NULL
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

-- Each store's local days, settled (docs/semantics.md §2.17): the business time and uptime of
-- the day [day_start, day_end) (UTC instants of the local date's 00:00 and the next's, as a
-- calendar month's bounds are converted) as the stored polls make them, and the inactive runs
-- within it (sla_day_downtime). A calendar month or week is then read from about 30 small rows
-- per store, and only its last day or two from the polls (engine/sla.py, engine/settled.py).
-- A row holds for any as-of at or after determined_by: the polls after that do not change the
-- day. An ingest forgets the rows that changed polls may change (from the first day a poll at or
-- after the change determines), every row of a store whose hours, special hours or zone
-- changed, and the rows retention makes untrue. A store's rows are consecutive dates.
CREATE TABLE IF NOT EXISTS sla_days (
    store_key     INTEGER   NOT NULL,  -- stores.store_key
    local_date    DATE      NOT NULL,
    day_start     TIMESTAMP NOT NULL,
    day_end       TIMESTAMP NOT NULL,
    business_us   BIGINT    NOT NULL,
    uptime_us     BIGINT    NOT NULL,
    all_polls     BOOLEAN   NOT NULL,  -- interpolated over all polls: none in hours yet
    depends_from  TIMESTAMP,           -- the last poll of that sequence at or before day_start
    determined_by TIMESTAMP NOT NULL   -- the first poll of that sequence at or after day_end
);

-- The inactive runs of each settled day, cut to the day, whether or not they cover business
-- time: a run through a closed day joins the parts of one incident on either side of it.
CREATE TABLE IF NOT EXISTS sla_day_downtime (
    store_key   INTEGER NOT NULL,  -- stores.store_key
    local_date  DATE    NOT NULL,
    start_us    BIGINT  NOT NULL,
    end_us      BIGINT  NOT NULL,
    business_us BIGINT  NOT NULL
);

-- Which of its local days each store has settled: [first_date, next_date) (engine/settled.py).
CREATE TABLE IF NOT EXISTS sla_days_span (
    store_key  INTEGER PRIMARY KEY,  -- stores.store_key
    first_date DATE    NOT NULL,
    next_date  DATE    NOT NULL
);

-- Alerts (docs/semantics.md §2.18): one row per inactive run that was announced, decided as
-- of the latest poll after each ingest (engine/alerts.py). alert_id is the first 16 hex digits
-- of md5(store_id || '@' || the run's start in microseconds) at opening, and never changes
-- afterwards, even when a late poll moves the run's start (down_since).
CREATE TABLE IF NOT EXISTS alerts (
    alert_id         VARCHAR   PRIMARY KEY,
    store_key        INTEGER   NOT NULL,  -- stores.store_key
    store_id         VARCHAR   NOT NULL,
    state            VARCHAR   NOT NULL,  -- 'open' or 'resolved'
    down_since       TIMESTAMP NOT NULL,  -- the run's start (data time), updated while open
    opened_as_of     TIMESTAMP NOT NULL,  -- the latest poll when it opened
    resolved_at      TIMESTAMP,           -- the run's end (data time)
    resolved_as_of   TIMESTAMP,           -- the latest poll when it resolved
    business_us_down BIGINT    NOT NULL,  -- business time of the run, updated while open
    evaluated_as_of  TIMESTAMP NOT NULL   -- the latest evaluation that updated the row
);

-- The events the alerts' decisions produce, written in the same transaction (a transactional
-- outbox): a sender posts each row's payload to the webhooks, at least once, retrying with
-- exponential back-off (docs/semantics.md §2.18). event_key = '<alert_id>:<event>' is the
-- idempotency key a receiver deduplicates on.
CREATE TABLE IF NOT EXISTS alert_outbox (
    event_key       VARCHAR   PRIMARY KEY,
    alert_id        VARCHAR   NOT NULL,       -- alerts.alert_id
    event           VARCHAR   NOT NULL,       -- 'opened' or 'resolved'
    payload         VARCHAR   NOT NULL,       -- the JSON posted
    created_as_of   TIMESTAMP NOT NULL,       -- the latest poll of the evaluation (data time)
    created_at      TIMESTAMP NOT NULL,       -- wall clock (UTC) of the evaluation
    attempts        INTEGER   NOT NULL DEFAULT 0,
    next_attempt_at TIMESTAMP NOT NULL,       -- wall clock: not posted before then
    delivered_to    VARCHAR[] NOT NULL DEFAULT [],  -- the webhook URLs that acknowledged it
    delivered_at    TIMESTAMP,                -- every webhook acknowledged it
    dead_at         TIMESTAMP,                -- given up (STOREMON_ALERT_RETRY_MAX_HOURS)
    last_error      VARCHAR
);

-- Every post of an event to a webhook, recorded by the delivery round that made it (engine/
-- delivery.py), with the answer: what an operator reads when a receiver misbehaves.
CREATE TABLE IF NOT EXISTS alert_delivery_attempts (
    event_key VARCHAR   NOT NULL,  -- alert_outbox.event_key
    webhook   VARCHAR   NOT NULL,  -- the URL posted to (for operators: it may hold a secret)
    posted_at TIMESTAMP NOT NULL,  -- wall clock (UTC)
    status    INTEGER,             -- the HTTP status answered; NULL: no answer (refused, timeout)
    error     VARCHAR,             -- why it did not acknowledge; NULL: acknowledged (2xx)
    seconds   DOUBLE    NOT NULL   -- how long the post took
);

-- Tables of earlier versions, now derived elsewhere: the report history lives in
-- history.duckdb (engine/history.py), and reports build their own business windows.
DROP TABLE IF EXISTS uptime_report;
DROP TABLE IF EXISTS business_windows_coverage;
