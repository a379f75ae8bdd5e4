DROP INDEX sla_rollups_crew_idx;
DROP INDEX sla_timers_dirty_crew_idx;
