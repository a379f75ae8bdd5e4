DROP TABLE mail_outbox;
DROP TABLE sla_pauses;
DROP TABLE sla_timers;
DROP TABLE sla_policy_versions;
