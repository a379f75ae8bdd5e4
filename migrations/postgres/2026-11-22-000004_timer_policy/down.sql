ALTER TABLE sla_timers DROP COLUMN escalations;
ALTER TABLE sla_timers DROP COLUMN warn_fraction;
