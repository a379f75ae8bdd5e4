-- A timer keeps the warning fraction and escalation delays of the policy version it started
-- with, so a newer policy changes running timers only through an audited recalculation.
ALTER TABLE sla_timers ADD COLUMN warn_fraction DOUBLE PRECISION NOT NULL DEFAULT 0.8;
ALTER TABLE sla_timers ADD COLUMN escalations TEXT NOT NULL DEFAULT '[]';
