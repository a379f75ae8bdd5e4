-- The database's own ceiling for one new order's writes into gridcall's tables (TOOLING.md):
-- the order, its `created` event, two timers and the idempotency row, in one durable commit.
-- Run by tools/bench.sh as: pgbench -n -M prepared -f tools/pgbench-create.sql -D area=CODE -D user=ID …
\set n random(1, 999999999)
BEGIN;
INSERT INTO work_orders (id, kind, category, priority, channel, status, caller_name, caller_phone,
    area_code, address, lat, lon, description, created_by, created_at, updated_at)
VALUES (gen_random_uuid()::text, 'repair', 'no_power', 'normal', 'phone', 'new', '用户',
    '16' || lpad(:n::text, 9, '0'), :area, '福华路 1 号', 22.54, 114.05, '负荷测试来电', :user,
    now(), now())
RETURNING id AS order_id, seq AS order_seq \gset
UPDATE work_orders SET number = 'R' || :order_seq WHERE id = :order_id;
INSERT INTO work_order_events (work_order_id, type, actor_id, to_status, data, at)
VALUES (:order_id, 'created', :user, 'new', '{}', now());
INSERT INTO sla_timers (id, work_order_id, stage, instance, policy_version, rule_name, target,
    target_seconds, calendar, started_at, due_at, warn_at, state, next_fire_at, area_code, kind,
    priority)
VALUES (gen_random_uuid()::text, :order_id, 'dispatch', 1, 'bench', 'repair, urban', '5m', 300,
        '24x7', now(), now() + interval '5 min', now() + interval '4 min', 'running',
        now() + interval '4 min', :area, 'repair', 'normal'),
       (gen_random_uuid()::text, :order_id, 'arrival', 1, 'bench', 'repair, urban', '45m', 2700,
        '24x7', now(), now() + interval '45 min', now() + interval '36 min', 'running',
        now() + interval '36 min', :area, 'repair', 'normal');
INSERT INTO idempotency_keys (user_id, key, request_hash, state, response_status, work_order_id,
    created_at)
VALUES (:user, :order_id, 'bench', 'done', 201, :order_id, now());
COMMIT;
