-- SLA engine: policy versions (shared by every instance), stage timers, force-majeure pauses,
-- and the mail outbox.

CREATE TABLE sla_policy_versions (
    seq BIGSERIAL PRIMARY KEY,
    version TEXT NOT NULL UNIQUE,
    body TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL
);

CREATE TABLE sla_timers (
    id TEXT PRIMARY KEY NOT NULL,
    work_order_id TEXT NOT NULL REFERENCES work_orders(id),
    stage TEXT NOT NULL,
    instance INTEGER NOT NULL,
    policy_version TEXT NOT NULL,
    rule_name TEXT NOT NULL,
    target TEXT NOT NULL,
    target_seconds BIGINT NOT NULL,
    calendar TEXT NOT NULL,
    started_at TIMESTAMP NOT NULL,
    due_at TIMESTAMP,
    warn_at TIMESTAMP,
    warned_at TIMESTAMP,
    paused_seconds BIGINT NOT NULL DEFAULT 0,
    excused_seconds BIGINT NOT NULL DEFAULT 0,
    state TEXT NOT NULL,
    ended_at TIMESTAMP,
    breached_at TIMESTAMP,
    escalation_level INTEGER NOT NULL DEFAULT 0,
    next_fire_at TIMESTAMP,
    holds TEXT NOT NULL DEFAULT '[]',
    area_code TEXT NOT NULL,
    version INTEGER NOT NULL DEFAULT 1,
    UNIQUE (work_order_id, stage, instance)
);
CREATE INDEX sla_timers_fire_idx ON sla_timers (next_fire_at);
CREATE INDEX sla_timers_order_idx ON sla_timers (work_order_id);
CREATE INDEX sla_timers_open_area_idx ON sla_timers (area_code, ended_at);
CREATE INDEX sla_timers_state_idx ON sla_timers (state, ended_at);

CREATE TABLE sla_pauses (
    id TEXT PRIMARY KEY NOT NULL,
    area_codes TEXT NOT NULL,
    starts_at TIMESTAMP NOT NULL,
    ends_at TIMESTAMP,
    reason TEXT NOT NULL,
    created_by TEXT NOT NULL REFERENCES users(id),
    created_at TIMESTAMP NOT NULL,
    ended_by TEXT REFERENCES users(id)
);

CREATE TABLE mail_outbox (
    id TEXT PRIMARY KEY NOT NULL,
    message_id TEXT NOT NULL UNIQUE,
    kind TEXT NOT NULL,
    recipient TEXT NOT NULL,
    subject TEXT NOT NULL,
    body TEXT NOT NULL,
    work_order_id TEXT,
    digest_key TEXT,
    state TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    last_error TEXT,
    next_attempt_at TIMESTAMP NOT NULL,
    lease_until TIMESTAMP,
    created_at TIMESTAMP NOT NULL,
    sent_at TIMESTAMP
);
CREATE INDEX mail_outbox_due_idx ON mail_outbox (state, next_attempt_at);
