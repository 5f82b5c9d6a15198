-- Whether each store of sla_results meets the target ($target_millionths: the target in
-- millionths of a percent), compared on integers so that 99.0 % of 100 hours is met by exactly
-- 99 hours; empty without business time. Run after sla_results.sql, and again on stored
-- results to apply another target.
UPDATE sla_results
SET target_met = CASE
    WHEN business_us > 0
    THEN uptime_us::HUGEINT * 100000000 >= $target_millionths::HUGEINT * business_us
END;
