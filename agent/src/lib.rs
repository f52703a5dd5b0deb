//! Parapet's host agent as a library: the real binary (`parapet-agent`) and every simulated host in
//! `sim/` run this same code, differing only in the hypervisor backend they hand it (and, in the
//! simulator, the fault hooks of [`faults`]).

pub mod connection;
pub mod faults;
pub mod guardian;
pub mod health;
pub mod hypervisor;
pub mod peers;
pub mod self_fence;
pub mod storage_heartbeat;
pub mod watchdog;

pub use connection::{AgentConfig, Backoff, run};
pub use faults::NetworkFaults;
pub use hypervisor::{Hypervisor, HypervisorError};
pub use storage_heartbeat::StorageMount;
