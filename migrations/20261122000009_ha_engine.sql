-- The HA engine (#5): the host HA switch and provider, per-cluster timing settings, each host's HA
-- state with its stored transitions, incidents with their timelines, the leader lease, and the
-- engine's state for a new leader to resume from. Zones and clusters already carry ha_enabled
-- (initial schema); HA is in effect for a host only when zone, cluster and host are all on.

-- ha_provider: kvm | sim. Simulated hosts (hypervisor 'sim') get 'sim'; the app layer keeps it so.
-- ha_state: the engine's last recorded state (api::v1::HostHaState, kebab-case); ha_reason why
-- (always set for 'ineligible'); ha_since when it was entered.
ALTER TABLE hosts ADD COLUMN ha_enabled BIGINT NOT NULL DEFAULT 0;
ALTER TABLE hosts ADD COLUMN ha_provider TEXT NOT NULL DEFAULT 'kvm';
ALTER TABLE hosts ADD COLUMN ha_state TEXT NOT NULL DEFAULT 'disabled';
ALTER TABLE hosts ADD COLUMN ha_reason TEXT;
ALTER TABLE hosts ADD COLUMN ha_since BIGINT;
-- The UDP port the host's agent receives peer heartbeats on (at its address), as it last registered;
-- NULL for agents that run none. Sent to the other hosts of its cluster as their peer list.
ALTER TABLE hosts ADD COLUMN ha_peer_port BIGINT;
UPDATE hosts SET ha_provider = 'sim' WHERE hypervisor = 'sim';

-- Timing settings per cluster, in milliseconds (the defaults are the contract's).
ALTER TABLE clusters ADD COLUMN ha_heartbeat_interval_ms BIGINT NOT NULL DEFAULT 1000;
ALTER TABLE clusters ADD COLUMN ha_suspect_after_ms BIGINT NOT NULL DEFAULT 3000;
ALTER TABLE clusters ADD COLUMN ha_storage_timeout_ms BIGINT NOT NULL DEFAULT 4000;
ALTER TABLE clusters ADD COLUMN ha_self_fence_timeout_ms BIGINT NOT NULL DEFAULT 8000;
ALTER TABLE clusters ADD COLUMN ha_fence_backoff_initial_ms BIGINT NOT NULL DEFAULT 1000;
ALTER TABLE clusters ADD COLUMN ha_fence_backoff_max_ms BIGINT NOT NULL DEFAULT 30000;

-- Every change of a host's HA state. No foreign key: history outlives the host. epoch: the
-- leadership epoch of the engine that recorded it.
CREATE TABLE ha_transitions (
    id TEXT PRIMARY KEY,
    host_id TEXT NOT NULL,
    from_state TEXT NOT NULL,
    to_state TEXT NOT NULL,
    event TEXT NOT NULL,
    reason TEXT NOT NULL,
    at BIGINT NOT NULL,
    epoch BIGINT NOT NULL
);

CREATE INDEX ha_transitions_host_at ON ha_transitions (host_id, at);

-- One failover per row: a host that failed, from detection until its VMs were dealt with.
-- At most one open (ended_at NULL) incident per host.
CREATE TABLE ha_incidents (
    id TEXT PRIMARY KEY,
    host_id TEXT NOT NULL,
    host_name TEXT NOT NULL,
    cluster_id TEXT,
    started_at BIGINT NOT NULL,
    ended_at BIGINT,
    verdict TEXT
);

CREATE UNIQUE INDEX ha_incidents_one_open_per_host ON ha_incidents (host_id) WHERE ended_at IS NULL;
CREATE INDEX ha_incidents_started_at ON ha_incidents (started_at);

-- An incident's timeline. kind: api::v1::incident_event_kind; duration_ms: for a VM restart, from
-- the incident's start until the VM ran elsewhere. seq orders events recorded in the same millisecond.
CREATE TABLE ha_incident_events (
    id TEXT PRIMARY KEY,
    incident_id TEXT NOT NULL REFERENCES ha_incidents(id) ON DELETE CASCADE,
    seq BIGINT NOT NULL,
    at BIGINT NOT NULL,
    kind TEXT NOT NULL,
    vm_id TEXT,
    vm_name TEXT,
    from_host_id TEXT,
    to_host_id TEXT,
    duration_ms BIGINT,
    message TEXT NOT NULL
);

CREATE INDEX ha_incident_events_incident ON ha_incident_events (incident_id, seq);

-- The leader lease: one row. A server leads while it holds the row and expires_at (unix ms) is in the
-- future; it renews by compare-and-set. Taking over an expired lease increments epoch, which every
-- command to an agent carries, so agents refuse commands from a deposed leader.
CREATE TABLE ha_leader (
    id BIGINT PRIMARY KEY,
    holder TEXT NOT NULL,
    epoch BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);

INSERT INTO ha_leader (id, holder, epoch, expires_at) VALUES (1, '', 0, 0);

-- The decision core's state (JSON of ha::decide::EngineState) after the last step, written by the
-- leader of `epoch` together with that step's records, so that a new leader resumes from it.
CREATE TABLE ha_engine_state (
    id BIGINT PRIMARY KEY,
    epoch BIGINT NOT NULL,
    state TEXT NOT NULL,
    updated_at BIGINT NOT NULL
);
