DROP INDEX outages_status_started_idx;
ALTER TABLE sla_timers DROP COLUMN holiday_data_missing;
DROP INDEX outages_started_idx;
ALTER TABLE refresh_tokens DROP COLUMN family_started_at;
CREATE TABLE login_failures (
    id TEXT PRIMARY KEY NOT NULL,
    username TEXT NOT NULL,
    at TIMESTAMP NOT NULL
);
CREATE INDEX login_failures_username_at_idx ON login_failures (username, at);
DROP INDEX login_throttles_window_idx;
DROP TABLE login_throttles;
