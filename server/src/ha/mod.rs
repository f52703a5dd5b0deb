//! High availability: the failover planner (pure), its input built from the inventory, the capacity
//! reconciler that keeps each cluster's plan and alerts current, and later the engine that uses them.

pub mod capacity;
pub mod decide;
pub mod lease;
pub mod plan;
pub mod pool;
pub mod run;
pub mod scenario;
