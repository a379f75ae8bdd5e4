DROP INDEX work_orders_outage_idx;
DROP TABLE outages;
