-- The report history (engine/history.py), in the attached file `history`.
-- One row per store and report partition; values are unrounded microseconds.
CREATE TABLE IF NOT EXISTS history.uptime_report (
    partition_hour   TIMESTAMP NOT NULL,  -- the partition: the UTC hour [H, H + 1 h)
    as_of            TIMESTAMP NOT NULL,  -- min(H + 1 h, latest poll when it was computed)
    store_id         VARCHAR   NOT NULL,
    uptime_hour_us   BIGINT    NOT NULL,
    uptime_day_us    BIGINT    NOT NULL,
    uptime_week_us   BIGINT    NOT NULL,
    business_hour_us BIGINT    NOT NULL,
    business_day_us  BIGINT    NOT NULL,
    business_week_us BIGINT    NOT NULL
);

-- One row per partition: when and by which run it was computed, and the fleet's totals.
CREATE TABLE IF NOT EXISTS history.uptime_report_partitions (
    partition_hour   TIMESTAMP NOT NULL,
    as_of            TIMESTAMP NOT NULL,
    stores           INTEGER   NOT NULL,
    uptime_day_us    BIGINT    NOT NULL,
    business_day_us  BIGINT    NOT NULL,
    uptime_week_us   BIGINT    NOT NULL,
    business_week_us BIGINT    NOT NULL,
    computed_at      TIMESTAMP NOT NULL,
    run_id           VARCHAR,
    -- when late data or a new snapshot last made a run recompute some stores' rows, and which run
    revised_at       TIMESTAMP,
    revised_run_id   VARCHAR,
    -- the blocking check its rows broke: a withheld partition is not shown as history
    withheld_by      VARCHAR
);

-- History files of earlier versions lack these columns.
ALTER TABLE history.uptime_report_partitions ADD COLUMN IF NOT EXISTS revised_at TIMESTAMP;
ALTER TABLE history.uptime_report_partitions ADD COLUMN IF NOT EXISTS revised_run_id VARCHAR;
ALTER TABLE history.uptime_report_partitions ADD COLUMN IF NOT EXISTS withheld_by VARCHAR;
