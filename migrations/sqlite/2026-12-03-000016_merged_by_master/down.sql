DROP INDEX work_orders_master_idx;
CREATE INDEX work_orders_master_idx ON work_orders (master_id) WHERE master_id IS NOT NULL;
