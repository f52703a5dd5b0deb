//! The hypervisor backend behind one trait: the in-memory one (simulated hosts, tests) now, libvirt
//! for real KVM hosts.

#[cfg(feature = "libvirt")]
pub mod libvirt;
pub mod memory;

use api::VmId;
use api::agent::{VmReport, VmSpec};
use async_trait::async_trait;
use tokio::sync::watch;

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum HypervisorError {
    #[error("VM {0} is not defined on this host")]
    UnknownVm(VmId),
    #[error("not enough {resource} on this host: the VM needs {needed}, {free} is free")]
    InsufficientCapacity { resource: &'static str, needed: u64, free: u64 },
    #[error("VM {0} is already {1}")]
    WrongState(VmId, &'static str),
    /// The hypervisor itself refused or failed (its message, e.g. libvirt's).
    #[error("hypervisor: {0}")]
    Backend(String),
}

#[async_trait]
pub trait Hypervisor: Send + Sync {
    /// Define the VM if needed and start it. Returns once the start has begun; the VM reports
    /// `Starting` until it has booted.
    async fn start_vm(&self, spec: &VmSpec) -> Result<(), HypervisorError>;
    /// Stop a VM: gracefully, or at once with `force`.
    async fn stop_vm(&self, vm: VmId, force: bool) -> Result<(), HypervisorError>;
    /// Undefine a stopped VM. Destroying a VM that is not defined succeeds (it is already gone).
    async fn destroy_vm(&self, vm: VmId) -> Result<(), HypervisorError>;
    /// Live migration, destination side: reserve room for the VM and hold it paused.
    async fn prepare_incoming(&self, spec: &VmSpec) -> Result<(), HypervisorError>;
    /// Live migration, source side: hand the running VM over; returns once it no longer runs here.
    async fn migrate_out(&self, vm: VmId, target_address: &str) -> Result<(), HypervisorError>;
    /// Live migration, destination side: resume the VM that arrived.
    async fn finish_incoming(&self, vm: VmId) -> Result<(), HypervisorError>;
    /// Every VM the hypervisor knows, with its state.
    async fn list_vms(&self) -> Vec<VmReport>;
    /// The VMs that are not stopped and whose disks are on the primary storage `storage_url` (the agent
    /// stops them when it loses that storage).
    async fn vms_on_storage(&self, storage_url: &str) -> Vec<VmId>;
    /// Ticks whenever any VM changes state, so the agent can send a fresh inventory.
    fn changes(&self) -> watch::Receiver<u64>;
}
