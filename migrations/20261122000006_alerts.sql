-- Alerts: conditions and events an operator must see (pool overcommitted, capacity dropped, no host
-- carries ha.tag, and later host failed / fenced, VM restarted, OOBM auth error ...).
--
-- An alert is open until someone acknowledges it. Its condition may end before that: cleared_at says
-- when. At most one uncleared alert exists per dedupe_key, so one condition raises one alert however
-- often (and by however many servers) it is re-evaluated. Cluster, host and VM ids carry no foreign
-- keys: an alert outlives the host or VM it names, as history.
CREATE TABLE alerts (
    id TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    severity TEXT NOT NULL,
    cluster_id TEXT,
    host_id TEXT,
    vm_id TEXT,
    message TEXT NOT NULL,
    dedupe_key TEXT NOT NULL,
    raised_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    acknowledged_at BIGINT,
    acknowledged_by TEXT,
    cleared_at BIGINT
);

CREATE UNIQUE INDEX alerts_one_uncleared_per_key ON alerts (dedupe_key) WHERE cleared_at IS NULL;
CREATE INDEX alerts_raised_at ON alerts (raised_at);
