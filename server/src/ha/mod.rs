//! High availability: the failover planner (pure), and later the engine that uses it.

pub mod plan;
