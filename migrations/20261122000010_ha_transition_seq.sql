-- Transitions of one engine step often share one instant; `seq` (per host, increasing) keeps the order
-- they happened in, which a random id could not. Rows from before this migration keep seq 0 and are
-- ordered by time.
ALTER TABLE ha_transitions ADD COLUMN seq BIGINT NOT NULL DEFAULT 0;
CREATE INDEX ha_transitions_host_seq ON ha_transitions (host_id, seq);
