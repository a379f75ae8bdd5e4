-- Event ids are the stream's positions. A writer takes its transaction id before its event
-- id, so a reader that sees a gap in the ids knows the holder was running in its snapshot and
-- can wait exactly until it ends (src/domain/event_stream.rs, docs/architecture.md).
CREATE FUNCTION work_order_event_next_id() RETURNS BIGINT LANGUAGE plpgsql VOLATILE AS $$
BEGIN
    PERFORM pg_current_xact_id();
    RETURN nextval('work_order_events_id_seq');
END
$$;
ALTER TABLE work_order_events ALTER COLUMN id SET DEFAULT work_order_event_next_id();

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
