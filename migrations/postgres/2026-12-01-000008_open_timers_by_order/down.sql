DROP INDEX sla_timers_order_idx;
CREATE INDEX sla_timers_order_idx ON sla_timers (work_order_id);
DROP INDEX sla_pauses_ends_idx;
DROP INDEX sla_timers_crew_stage_idx;
