-- An action reads the order's open timers (work_order_id = ? AND ended_at IS NULL). With the
-- index on work_order_id alone, PostgreSQL's plan (generic, chosen while the table was small)
-- ANDed it with the partial index of every open timer, whose size grows with the backlog:
-- 9.5 ms a call at 12,000 orders, most of the database's time on a create. Shaped as
-- (work_order_id, ended_at) the lookup is one probe of the order's few entries on either
-- database, whatever the statistics say.
DROP INDEX sla_timers_order_idx;
CREATE INDEX sla_timers_order_idx ON sla_timers (work_order_id, ended_at);
-- Force-majeure windows that can overlap an order are read by their end (not every window ever
-- declared on each create).
CREATE INDEX sla_pauses_ends_idx ON sla_pauses (ends_at);
