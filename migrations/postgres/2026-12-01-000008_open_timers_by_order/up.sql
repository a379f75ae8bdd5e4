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
-- Routing reads the last 30 days' arrivals (replies for units) of the crews that could take the
-- order and their peers, a few hundred entries each; by stage and time it read every crew's
-- month (818 ms a dispatch with a year of orders).
CREATE INDEX sla_timers_crew_stage_idx ON sla_timers (credited_crew_id, stage, started_at, state);
