-- The reports of a batch (engine/report.py, compute_reports), filled chunk by chunk of stores
-- by report_values.sql: uptime and business time in microseconds, per period.
CREATE OR REPLACE TEMP TABLE report_results (
    as_of            TIMESTAMP,
    store_key        INTEGER,
    store_id         VARCHAR,
    uptime_hour_us   BIGINT,
    uptime_day_us    BIGINT,
    uptime_week_us   BIGINT,
    business_hour_us BIGINT,
    business_day_us  BIGINT,
    business_week_us BIGINT
);
