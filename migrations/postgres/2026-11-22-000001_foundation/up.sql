-- Foundation: reference data, users and auth, work orders and their append-only events.
-- Times are UTC TIMESTAMP; ids are UUID text; lists of codes are JSON text.

CREATE TABLE areas (
    code TEXT PRIMARY KEY NOT NULL,
    name TEXT NOT NULL,
    region_class TEXT NOT NULL,
    parent_code TEXT REFERENCES areas(code),
    backup_area_codes TEXT NOT NULL DEFAULT '[]',
    calendar TEXT NOT NULL DEFAULT 'cn',
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL
);

CREATE TABLE crews (
    id TEXT PRIMARY KEY NOT NULL,
    code TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL,
    kind TEXT NOT NULL,
    area_codes TEXT NOT NULL DEFAULT '[]',
    skills TEXT NOT NULL DEFAULT '[]',
    capacity INTEGER NOT NULL,
    on_duty BOOLEAN NOT NULL,
    lat DOUBLE PRECISION,
    lon DOUBLE PRECISION,
    located_at TIMESTAMP,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL
);

CREATE TABLE users (
    id TEXT PRIMARY KEY NOT NULL,
    username TEXT NOT NULL UNIQUE,
    password_hash TEXT NOT NULL,
    role TEXT NOT NULL,
    display_name TEXT NOT NULL,
    email TEXT,
    crew_id TEXT REFERENCES crews(id),
    area_codes TEXT NOT NULL DEFAULT '[]',
    active BOOLEAN NOT NULL,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL
);
CREATE INDEX users_crew_idx ON users (crew_id);

CREATE TABLE refresh_tokens (
    id TEXT PRIMARY KEY NOT NULL,
    user_id TEXT NOT NULL REFERENCES users(id),
    family_id TEXT NOT NULL,
    token_hash TEXT NOT NULL UNIQUE,
    created_at TIMESTAMP NOT NULL,
    expires_at TIMESTAMP NOT NULL,
    used_at TIMESTAMP,
    revoked_at TIMESTAMP
);
CREATE INDEX refresh_tokens_user_idx ON refresh_tokens (user_id);
CREATE INDEX refresh_tokens_family_idx ON refresh_tokens (family_id);

CREATE TABLE login_failures (
    id TEXT PRIMARY KEY NOT NULL,
    username TEXT NOT NULL,
    at TIMESTAMP NOT NULL
);
CREATE INDEX login_failures_username_at_idx ON login_failures (username, at);

CREATE TABLE customers (
    id TEXT PRIMARY KEY NOT NULL,
    account_no TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL,
    phone TEXT NOT NULL,
    email TEXT,
    address TEXT NOT NULL,
    area_code TEXT NOT NULL REFERENCES areas(code),
    lat DOUBLE PRECISION,
    lon DOUBLE PRECISION,
    tier TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL
);
CREATE INDEX customers_phone_idx ON customers (phone);
CREATE INDEX customers_created_idx ON customers (created_at, id);

CREATE TABLE work_orders (
    seq BIGSERIAL PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    number TEXT UNIQUE,
    kind TEXT NOT NULL,
    category TEXT NOT NULL,
    grade TEXT,
    priority TEXT NOT NULL,
    channel TEXT NOT NULL,
    status TEXT NOT NULL,
    suspended_from TEXT,
    suspend_until TIMESTAMP,
    customer_id TEXT REFERENCES customers(id),
    caller_name TEXT,
    caller_phone TEXT,
    area_code TEXT NOT NULL REFERENCES areas(code),
    address TEXT,
    lat DOUBLE PRECISION,
    lon DOUBLE PRECISION,
    description TEXT NOT NULL,
    resolution TEXT,
    assigned_crew_id TEXT REFERENCES crews(id),
    master_id TEXT REFERENCES work_orders(id),
    subject_crew_id TEXT REFERENCES crews(id),
    outage_id TEXT,
    returned_crew_ids TEXT NOT NULL DEFAULT '[]',
    urge_count INTEGER NOT NULL DEFAULT 0,
    reopen_count INTEGER NOT NULL DEFAULT 0,
    satisfaction TEXT,
    version INTEGER NOT NULL DEFAULT 1,
    created_by TEXT NOT NULL REFERENCES users(id),
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL,
    resolved_at TIMESTAMP,
    closed_at TIMESTAMP
);
CREATE INDEX work_orders_created_idx ON work_orders (created_at, id);
CREATE INDEX work_orders_status_idx ON work_orders (status, created_at);
CREATE INDEX work_orders_kind_idx ON work_orders (kind, created_at);
CREATE INDEX work_orders_priority_idx ON work_orders (priority, created_at);
CREATE INDEX work_orders_area_idx ON work_orders (area_code, created_at);
CREATE INDEX work_orders_crew_idx ON work_orders (assigned_crew_id, status);
CREATE INDEX work_orders_customer_idx ON work_orders (customer_id, kind, status);
CREATE INDEX work_orders_phone_idx ON work_orders (caller_phone, kind, status);
CREATE INDEX work_orders_master_idx ON work_orders (master_id);

CREATE TABLE work_order_events (
    id BIGSERIAL PRIMARY KEY,
    work_order_id TEXT NOT NULL REFERENCES work_orders(id),
    type TEXT NOT NULL,
    actor_id TEXT,
    actor_username TEXT,
    actor_role TEXT,
    from_status TEXT,
    to_status TEXT,
    reason TEXT,
    data TEXT NOT NULL DEFAULT '{}',
    at TIMESTAMP NOT NULL
);
CREATE INDEX work_order_events_order_idx ON work_order_events (work_order_id, id);

CREATE TABLE idempotency_keys (
    user_id TEXT NOT NULL,
    key TEXT NOT NULL,
    request_hash TEXT NOT NULL,
    state TEXT NOT NULL,
    response_status INTEGER,
    work_order_id TEXT,
    created_at TIMESTAMP NOT NULL,
    PRIMARY KEY (user_id, key)
);
CREATE INDEX idempotency_keys_created_idx ON idempotency_keys (created_at);
