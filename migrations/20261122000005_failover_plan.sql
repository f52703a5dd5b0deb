-- Failover plan per cluster, global settings, and the decision behind an audited call.
--
-- ha_failure_limit: how many host failures the operator wants the cluster to survive (XenCenter's
-- "server failure limit"), set by pool admins and pool operators.
-- ha_capacity: the max failure capacity the capacity reconciler last computed; NULL before the first
-- evaluation, -1 when not even today's protected VMs can all run (no plan at all).
ALTER TABLE clusters ADD COLUMN ha_failure_limit BIGINT NOT NULL DEFAULT 1;
ALTER TABLE clusters ADD COLUMN ha_capacity BIGINT;
ALTER TABLE clusters ADD COLUMN ha_plan_method TEXT;
ALTER TABLE clusters ADD COLUMN ha_evaluated_at BIGINT;

-- Global settings (key -> text value), e.g. `ha.tag`. A key that is absent is not configured.
CREATE TABLE settings (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL,
    updated_at BIGINT NOT NULL
);

-- What a call decided beyond its status, e.g. that the caller proceeded past an overcommit warning.
ALTER TABLE audit_log ADD COLUMN detail TEXT;
