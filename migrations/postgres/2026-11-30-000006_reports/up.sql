-- Stage metrics with fixed credit (PRODUCT.md, "Metrics and crew performance"): when a stage
-- instance ends it records its wall and SLA durations and the crew it is credited to, so a
-- later reassign, reopen or merge never moves credit.
ALTER TABLE sla_timers ADD COLUMN credited_crew_id TEXT;
ALTER TABLE sla_timers ADD COLUMN wall_seconds BIGINT;
ALTER TABLE sla_timers ADD COLUMN sla_seconds BIGINT;
-- Reports select timers by the period their stage started in (optionally one stage);
-- routing reads 30 days of arrivals by credited crew and verdict (index-only).
CREATE INDEX sla_timers_started_idx ON sla_timers (started_at);
CREATE INDEX sla_timers_stage_started_idx ON sla_timers (stage, started_at, state, credited_crew_id);

-- Facts credited to a crew at the time they happened (resolve, callback, return, dispatch,
-- complaint, praise): the scorecard's counts, by their own time.
CREATE TABLE crew_credits (
    id TEXT PRIMARY KEY NOT NULL,
    crew_id TEXT NOT NULL,
    fact TEXT NOT NULL,
    work_order_id TEXT NOT NULL,
    at TIMESTAMP NOT NULL,
    satisfaction TEXT,
    reopened_at TIMESTAMP
);
CREATE INDEX crew_credits_at_idx ON crew_credits (at, crew_id);
CREATE INDEX crew_credits_order_idx ON crew_credits (work_order_id, fact, at);

-- Monthly scorecards: a row per month that has been closed (or locked to be closed); a
-- closed month's rows are the frozen snapshot.
CREATE TABLE scorecards (
    period TEXT PRIMARY KEY NOT NULL,
    status TEXT NOT NULL,
    closed_at TIMESTAMP,
    closed_by TEXT,
    rows TEXT NOT NULL DEFAULT '[]',
    version INTEGER NOT NULL DEFAULT 1,
    updated_at TIMESTAMP NOT NULL
);

CREATE TABLE scorecard_audit (
    id TEXT PRIMARY KEY NOT NULL,
    period TEXT NOT NULL,
    action TEXT NOT NULL,
    actor_id TEXT NOT NULL,
    reason TEXT,
    at TIMESTAMP NOT NULL
);
CREATE INDEX scorecard_audit_period_idx ON scorecard_audit (period, at);

-- Appeals (免责申请) against breached timers.
CREATE TABLE appeals (
    id TEXT PRIMARY KEY NOT NULL,
    work_order_id TEXT NOT NULL REFERENCES work_orders(id),
    timer_id TEXT NOT NULL REFERENCES sla_timers(id),
    stage TEXT NOT NULL,
    instance INTEGER NOT NULL,
    area_code TEXT NOT NULL,
    crew_id TEXT,
    period TEXT NOT NULL,
    reason_code TEXT NOT NULL,
    reason TEXT NOT NULL,
    status TEXT NOT NULL,
    filed_by TEXT NOT NULL REFERENCES users(id),
    filed_at TIMESTAMP NOT NULL,
    decided_by TEXT REFERENCES users(id),
    decided_at TIMESTAMP,
    decision_note TEXT
);
-- One pending appeal per timer, enforced by the database.
CREATE UNIQUE INDEX appeals_one_pending_idx ON appeals (timer_id) WHERE status = 'pending';
CREATE INDEX appeals_status_idx ON appeals (status, filed_at, id);
CREATE INDEX appeals_period_idx ON appeals (period, status);
CREATE INDEX appeals_crew_idx ON appeals (crew_id, filed_at);

-- Backfill from the event history: the crew assigned just before an instance ended (what
-- the live code credits), durations in wall time, and SLA time where it equals wall time
-- less held time (24x7 calendars; reports compute the rest from the calendar).
UPDATE sla_timers SET
    wall_seconds = CAST(round(extract(epoch FROM (ended_at - started_at))) AS BIGINT),
    sla_seconds = CASE WHEN calendar = '24x7' THEN CAST(round(extract(epoch FROM (ended_at - started_at))) AS BIGINT) - paused_seconds - excused_seconds END,
    credited_crew_id = CASE WHEN stage = 'dispatch' THEN NULL ELSE (SELECT CASE WHEN e2.type IN ('dispatch', 'reassign') THEN (e2.data::json ->> 'crew_id') END
        FROM work_order_events e2
        WHERE e2.work_order_id = sla_timers.work_order_id AND e2.at < sla_timers.ended_at
          AND (e2.type IN ('dispatch', 'reassign', 'reject', 'reopen')
               OR (e2.type = 'callback' AND e2.to_status = 'reopened'))
        ORDER BY e2.id DESC LIMIT 1) END
WHERE ended_at IS NOT NULL;

INSERT INTO crew_credits (id, crew_id, fact, work_order_id, at)
SELECT 'backfill-dispatch-' || e.id, (e.data::json ->> 'crew_id'), 'dispatch', e.work_order_id, e.at
FROM work_order_events e
WHERE e.type IN ('dispatch', 'reassign') AND (e.data::json ->> 'crew_id') IS NOT NULL;

INSERT INTO crew_credits (id, crew_id, fact, work_order_id, at)
SELECT 'backfill-return-' || e.id, (e.data::json ->> 'crew_id'), 'return', e.work_order_id, e.at
FROM work_order_events e
WHERE e.type = 'reject' AND (e.data::json ->> 'crew_id') IS NOT NULL;

INSERT INTO crew_credits (id, crew_id, fact, work_order_id, at, reopened_at)
SELECT * FROM (
    SELECT 'backfill-resolve-' || e.id AS id, (SELECT CASE WHEN e2.type IN ('dispatch', 'reassign') THEN (e2.data::json ->> 'crew_id') END
        FROM work_order_events e2
        WHERE e2.work_order_id = e.work_order_id AND e2.at < e.at
          AND (e2.type IN ('dispatch', 'reassign', 'reject', 'reopen')
               OR (e2.type = 'callback' AND e2.to_status = 'reopened'))
        ORDER BY e2.id DESC LIMIT 1) AS crew_id,
        'resolve' AS fact, e.work_order_id, e.at,
        (SELECT min(r.at) FROM work_order_events r
         WHERE r.work_order_id = e.work_order_id AND r.id > e.id
           AND (r.type = 'reopen' OR (r.type = 'callback' AND r.to_status = 'reopened'))) AS reopened_at
    FROM work_order_events e
    WHERE e.type = 'resolve'
) resolves
WHERE crew_id IS NOT NULL;

INSERT INTO crew_credits (id, crew_id, fact, work_order_id, at, satisfaction)
SELECT * FROM (
    SELECT 'backfill-callback-' || e.id AS id, (SELECT CASE WHEN e2.type IN ('dispatch', 'reassign') THEN (e2.data::json ->> 'crew_id') END
        FROM work_order_events e2
        WHERE e2.work_order_id = e.work_order_id AND e2.at < e.at
          AND (e2.type IN ('dispatch', 'reassign', 'reject', 'reopen')
               OR (e2.type = 'callback' AND e2.to_status = 'reopened'))
        ORDER BY e2.id DESC LIMIT 1) AS crew_id,
        'callback' AS fact, e.work_order_id, e.at, (e.data::json ->> 'satisfaction') AS satisfaction
    FROM work_order_events e
    WHERE e.type = 'callback'
) callbacks
WHERE crew_id IS NOT NULL;

INSERT INTO crew_credits (id, crew_id, fact, work_order_id, at)
SELECT 'backfill-' || kind || '-' || id, subject_crew_id, kind, id, created_at
FROM work_orders
WHERE kind IN ('complaint', 'praise') AND subject_crew_id IS NOT NULL;

-- The breach list pages through breached instances by stage start.
CREATE INDEX sla_timers_breached_idx ON sla_timers (started_at, id) WHERE breached_at IS NOT NULL;

-- Roll-ups (docs/reports.md, "Speed"): ended stage instances and credited facts counted per
-- day and per month, so that a year's report reads tens of thousands of rows, not millions.
-- A timer or credit that ends or changes is marked dirty in its own transaction (no hot
-- roll-up row under concurrent writers); the roll-up job folds dirty rows in and records
-- what it applied, and reports add what is still dirty, so they are exact with no lag.
ALTER TABLE sla_timers ADD COLUMN kind TEXT NOT NULL DEFAULT '';
ALTER TABLE sla_timers ADD COLUMN priority TEXT NOT NULL DEFAULT '';
ALTER TABLE sla_timers ADD COLUMN rollup_dirty BOOLEAN NOT NULL DEFAULT false;
ALTER TABLE sla_timers ADD COLUMN rollup_applied TEXT;
UPDATE sla_timers SET
    kind = (SELECT w.kind FROM work_orders w WHERE w.id = sla_timers.work_order_id),
    priority = (SELECT w.priority FROM work_orders w WHERE w.id = sla_timers.work_order_id),
    rollup_dirty = (ended_at IS NOT NULL);
CREATE INDEX sla_timers_rollup_dirty_idx ON sla_timers (started_at) WHERE rollup_dirty;
CREATE INDEX sla_timers_open_started_idx ON sla_timers (started_at) WHERE ended_at IS NULL;

ALTER TABLE crew_credits ADD COLUMN repeat_of_at TIMESTAMP;
ALTER TABLE crew_credits ADD COLUMN rollup_dirty BOOLEAN NOT NULL DEFAULT false;
ALTER TABLE crew_credits ADD COLUMN rollup_applied TEXT;
UPDATE crew_credits SET rollup_dirty = true;
CREATE INDEX crew_credits_rollup_dirty_idx ON crew_credits (at) WHERE rollup_dirty;
-- A resolve by a crew that had resolved the same order before (a reopen came between).
UPDATE crew_credits SET repeat_of_at = (
    SELECT max(p.at) FROM crew_credits p
    WHERE p.work_order_id = crew_credits.work_order_id AND p.crew_id = crew_credits.crew_id
      AND p.fact = 'resolve' AND p.at < crew_credits.at)
WHERE fact = 'resolve';
CREATE INDEX crew_credits_repeat_idx ON crew_credits (at) WHERE repeat_of_at IS NOT NULL;

CREATE TABLE sla_rollups (
    grain TEXT NOT NULL,
    period TEXT NOT NULL,
    area_code TEXT NOT NULL,
    kind TEXT NOT NULL,
    priority TEXT NOT NULL,
    stage TEXT NOT NULL,
    crew_id TEXT NOT NULL,
    met BIGINT NOT NULL DEFAULT 0,
    breached BIGINT NOT NULL DEFAULT 0,
    stopped BIGINT NOT NULL DEFAULT 0,
    excused BIGINT NOT NULL DEFAULT 0,
    minutes TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (grain, period, area_code, kind, priority, stage, crew_id)
);

CREATE TABLE credit_rollups (
    grain TEXT NOT NULL,
    period TEXT NOT NULL,
    crew_id TEXT NOT NULL,
    dispatches BIGINT NOT NULL DEFAULT 0,
    returns BIGINT NOT NULL DEFAULT 0,
    callbacks BIGINT NOT NULL DEFAULT 0,
    callbacks_good BIGINT NOT NULL DEFAULT 0,
    complaints BIGINT NOT NULL DEFAULT 0,
    praise BIGINT NOT NULL DEFAULT 0,
    resolves BIGINT NOT NULL DEFAULT 0,
    resolves_reopened BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (grain, period, crew_id)
);

-- One roll-up job at a time across instances: its transaction updates this row first.
CREATE TABLE rollup_lock (
    id INTEGER PRIMARY KEY NOT NULL,
    ran_at TIMESTAMP
);
INSERT INTO rollup_lock (id, ran_at) VALUES (1, NULL);
