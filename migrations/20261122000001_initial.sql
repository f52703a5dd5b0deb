-- Parapet's first schema. Forward-only: never edit once landed; add a new migration instead.
-- Written in the common subset of SQLite and PostgreSQL (TEXT ids holding UUIDs, BIGINT unix
-- milliseconds for times, BIGINT 0/1 flags (sqlx's Any driver cannot read SQLite booleans),
-- JSON arrays in TEXT for short lists).

CREATE TABLE users (
    id TEXT PRIMARY KEY,
    username TEXT NOT NULL UNIQUE,
    password_hash TEXT NOT NULL,
    role TEXT NOT NULL,
    disabled BIGINT NOT NULL DEFAULT 0,
    -- bumped on logout-everywhere / password change: tokens carrying an older value are refused
    token_version BIGINT NOT NULL DEFAULT 0,
    created_at BIGINT NOT NULL
);

CREATE TABLE zones (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    ha_enabled BIGINT NOT NULL DEFAULT 0,
    oobm_enabled BIGINT NOT NULL DEFAULT 0,
    -- SHA-256 (hex) of the token agents of this zone present when they connect
    join_token_hash TEXT NOT NULL,
    created_at BIGINT NOT NULL
);

CREATE TABLE clusters (
    id TEXT PRIMARY KEY,
    zone_id TEXT NOT NULL REFERENCES zones(id),
    name TEXT NOT NULL,
    ha_enabled BIGINT NOT NULL DEFAULT 0,
    oobm_enabled BIGINT NOT NULL DEFAULT 0,
    created_at BIGINT NOT NULL,
    UNIQUE (zone_id, name)
);

CREATE TABLE hosts (
    id TEXT PRIMARY KEY,
    zone_id TEXT NOT NULL REFERENCES zones(id),
    cluster_id TEXT NOT NULL REFERENCES clusters(id),
    name TEXT NOT NULL,
    address TEXT NOT NULL,
    hypervisor TEXT NOT NULL,
    allocation TEXT NOT NULL,
    connected BIGINT NOT NULL DEFAULT 0,
    last_heartbeat_at BIGINT,
    cpu_cores BIGINT NOT NULL,
    cpu_mhz BIGINT NOT NULL,
    memory_mb BIGINT NOT NULL,
    tags TEXT NOT NULL DEFAULT '[]',
    agent_version TEXT NOT NULL DEFAULT '',
    created_at BIGINT NOT NULL,
    UNIQUE (zone_id, name)
);

CREATE TABLE storage_pools (
    id TEXT PRIMARY KEY,
    zone_id TEXT NOT NULL REFERENCES zones(id),
    cluster_id TEXT REFERENCES clusters(id),
    host_id TEXT REFERENCES hosts(id),
    name TEXT NOT NULL,
    kind TEXT NOT NULL,
    scope TEXT NOT NULL,
    url TEXT NOT NULL,
    capacity_gb BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    UNIQUE (zone_id, name)
);

-- which host has which primary storage mounted, as its agent last reported
CREATE TABLE host_storage (
    host_id TEXT NOT NULL REFERENCES hosts(id),
    storage_pool_id TEXT NOT NULL REFERENCES storage_pools(id),
    PRIMARY KEY (host_id, storage_pool_id)
);

CREATE TABLE compute_offerings (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    description TEXT NOT NULL,
    cpu_cores BIGINT NOT NULL,
    cpu_mhz BIGINT NOT NULL,
    memory_mb BIGINT NOT NULL,
    host_tags TEXT NOT NULL DEFAULT '[]',
    offer_ha BIGINT NOT NULL,
    created_at BIGINT NOT NULL
);

CREATE TABLE vms (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    zone_id TEXT NOT NULL REFERENCES zones(id),
    host_id TEXT REFERENCES hosts(id),
    offering_id TEXT NOT NULL REFERENCES compute_offerings(id),
    storage_pool_id TEXT NOT NULL REFERENCES storage_pools(id),
    state TEXT NOT NULL,
    state_reason TEXT,
    ha_protected BIGINT NOT NULL,
    restart_priority TEXT NOT NULL,
    generation BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    UNIQUE (zone_id, name)
);

CREATE INDEX vms_host ON vms (host_id);
