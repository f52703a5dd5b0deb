//! Parapet's host agent as a library: the real binary (`parapet-agent`) and every simulated host in
//! `sim/` run this same code, differing only in the hypervisor backend they hand it.

pub mod connection;
pub mod hypervisor;

pub use connection::{AgentConfig, Backoff, run};
pub use hypervisor::{Hypervisor, HypervisorError};
