-- Routing's recent performance (a crew's on-time arrivals, or replies for units, over the
-- last 30 days) is read from the day roll-up cells of the crews that could take the order,
-- plus the few instances the roll-up job has not folded yet, instead of counting every
-- instance of the window: a busy crew's month is thousands of rows, its cells a few dozen.
CREATE INDEX sla_rollups_crew_idx ON sla_rollups (crew_id, stage, grain, period);
-- ... and the instances not folded yet, of those crews: a probe of the few dirty rows, not a
-- walk of the crews' month filtered on the flag.
CREATE INDEX sla_timers_dirty_crew_idx ON sla_timers (credited_crew_id, stage, started_at) WHERE rollup_dirty;
