-- After a settlement (engine/settled.py): each store's settled dates are [first_date,
-- next_date), extended by the days settled_now holds (they follow the store's next_date).
INSERT INTO sla_days_span
SELECT store_key, min(local_date), max(local_date) + 1
FROM settled_now
GROUP BY store_key
ON CONFLICT (store_key) DO UPDATE SET next_date = excluded.next_date;
