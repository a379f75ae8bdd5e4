-- Mass outages (话务涌流): a declared fault with a master repair order that new repair calls
-- from its areas link to.
CREATE TABLE outages (
    id TEXT PRIMARY KEY NOT NULL,
    area_codes TEXT NOT NULL,
    cause TEXT NOT NULL,
    feeder TEXT,
    started_at TIMESTAMP NOT NULL,
    estimated_restore_at TIMESTAMP,
    master_id TEXT NOT NULL REFERENCES work_orders(id),
    status TEXT NOT NULL,
    created_by TEXT NOT NULL REFERENCES users(id),
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL,
    ended_at TIMESTAMP,
    cancel_reason TEXT
);
CREATE INDEX outages_status_idx ON outages (status);
CREATE INDEX work_orders_outage_idx ON work_orders (outage_id);
