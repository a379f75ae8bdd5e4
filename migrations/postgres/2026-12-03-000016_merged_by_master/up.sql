-- The orders waiting on a master (`master_id = ? AND status = 'merged'`) are read and moved
-- together when the master is resolved or cancelled, and an outage's restore moves thousands.
-- With the master alone in the index, the planner could choose between it (every order ever
-- merged into that master) and `work_orders_status_idx` (every order merged into any master
-- and still waiting); with both columns in the key the walk is exactly the orders it moves.
DROP INDEX work_orders_master_idx;
CREATE INDEX work_orders_master_idx ON work_orders (master_id, status) WHERE master_id IS NOT NULL;
