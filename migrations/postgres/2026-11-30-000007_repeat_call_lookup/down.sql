DROP INDEX work_orders_phone_idx;
DROP INDEX work_orders_customer_idx;
CREATE INDEX work_orders_phone_idx ON work_orders (caller_phone, kind, status);
CREATE INDEX work_orders_customer_idx ON work_orders (customer_id, kind, status);
