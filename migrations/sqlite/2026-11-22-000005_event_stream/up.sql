-- Single-use tickets for browsers' EventSource, which cannot send an Authorization header.
CREATE TABLE event_tickets (
    token_hash TEXT PRIMARY KEY,
    user_id TEXT NOT NULL REFERENCES users(id),
    expires_at TIMESTAMP NOT NULL
);

-- Open event streams, counted per user across instances; a row whose heartbeat stopped
-- (its instance died) stops counting after a few heartbeats.
CREATE TABLE event_streams (
    id TEXT PRIMARY KEY,
    user_id TEXT NOT NULL REFERENCES users(id),
    opened_at TIMESTAMP NOT NULL,
    seen_at TIMESTAMP NOT NULL
);
CREATE INDEX event_streams_user_idx ON event_streams (user_id);
