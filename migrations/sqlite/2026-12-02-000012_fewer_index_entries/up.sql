-- Fewer index entries per write. An index entry is written for every inserted row and, on
-- PostgreSQL, for every update that is not HOT (every status change of an order, every end of
-- a stage instance): a create wrote some forty.
--
-- Nobody reads stage instances by credited crew any more (routing reads the roll-up cells).
DROP INDEX sla_timers_crew_stage_idx;
-- Columns that are NULL for most rows are indexed only where set: every read of them compares
-- them with a value (`=`, `IN`, `<=`), which implies IS NOT NULL on both databases, so the
-- same index serves it. An order has no master, no outage and (until dispatched) no crew, and
-- a caller often no customer record; an ended instance has no next fire time.
DROP INDEX work_orders_master_idx;
CREATE INDEX work_orders_master_idx ON work_orders (master_id) WHERE master_id IS NOT NULL;
DROP INDEX work_orders_outage_idx;
CREATE INDEX work_orders_outage_idx ON work_orders (outage_id) WHERE outage_id IS NOT NULL;
DROP INDEX work_orders_crew_idx;
CREATE INDEX work_orders_crew_idx ON work_orders (assigned_crew_id, status)
    WHERE assigned_crew_id IS NOT NULL;
DROP INDEX work_orders_customer_idx;
CREATE INDEX work_orders_customer_idx ON work_orders (customer_id, kind, created_at)
    WHERE customer_id IS NOT NULL;
DROP INDEX sla_timers_fire_idx;
CREATE INDEX sla_timers_fire_idx ON sla_timers (next_fire_at) WHERE next_fire_at IS NOT NULL;
