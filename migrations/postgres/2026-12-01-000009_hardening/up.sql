-- Login throttle (API.md, "Auth and users"): one counter row per (username, client address)
-- and one per username over every address (address '*'). An attempt is taken by an UPDATE of
-- these rows before the password is hashed (failures + pending below the limit, pending + 1):
-- the row lock serialises concurrent attempts, so none slips past the count. When it is
-- checked, pending goes back down and a failure is counted.
CREATE TABLE login_throttles (
    username TEXT NOT NULL,
    address TEXT NOT NULL,
    failures INTEGER NOT NULL,
    pending INTEGER NOT NULL,
    window_started_at TIMESTAMP NOT NULL,
    PRIMARY KEY (username, address)
);
-- Rows whose window has passed are pruned as attempts come in.
CREATE INDEX login_throttles_window_idx ON login_throttles (window_started_at);
DROP TABLE login_failures;

-- A refresh chain ends a fixed time after its login, however often it is used.
ALTER TABLE refresh_tokens ADD COLUMN family_started_at TIMESTAMP;

-- A timer whose span runs into a year without holiday data says so (computed as if every
-- weekday worked there).
ALTER TABLE sla_timers ADD COLUMN holiday_data_missing TEXT;

-- GET /outages pages newest first by (started_at, id), all or only the active ones.
CREATE INDEX outages_started_idx ON outages (started_at, id);
CREATE INDEX outages_status_started_idx ON outages (status, started_at, id);
