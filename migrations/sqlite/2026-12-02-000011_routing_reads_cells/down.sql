CREATE INDEX sla_timers_dirty_crew_idx ON sla_timers (credited_crew_id, stage, started_at) WHERE rollup_dirty;
