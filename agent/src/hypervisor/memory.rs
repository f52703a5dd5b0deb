//! An in-memory hypervisor: VMs really go through Starting -> Running (after a boot delay) and
//! Stopping -> Stopped, within the host's memory and CPU capacity. Simulated hosts and tests use it.

use super::{Hypervisor, HypervisorError};
use api::VmId;
use api::agent::{AgentVmState, VmReport, VmSpec};
use api::v1::Resources;
use async_trait::async_trait;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::watch;

pub fn state_name(state: AgentVmState) -> &'static str {
    match state {
        AgentVmState::Incoming => "incoming",
        AgentVmState::MigratingOut => "migrating out",
        AgentVmState::Starting => "starting",
        AgentVmState::Running => "running",
        AgentVmState::Stopping => "stopping",
        AgentVmState::Stopped => "stopped",
        AgentVmState::Crashed => "crashed",
    }
}

#[derive(Clone, Debug)]
struct MemoryVm {
    spec: VmSpec,
    state: AgentVmState,
    /// A hung guest ignores graceful shutdown requests (only a forced stop ends it).
    hung: bool,
    /// Bumped on each transition, so a delayed boot or shutdown only completes its own transition.
    transition: u64,
}

struct Inner {
    vms: BTreeMap<VmId, MemoryVm>,
    next_transition: u64,
}

#[derive(Clone)]
pub struct MemoryHypervisor {
    inner: Arc<Mutex<Inner>>,
    capacity: Resources,
    boot_delay: Duration,
    shutdown_delay: Duration,
    changes: Arc<watch::Sender<u64>>,
}

impl MemoryHypervisor {
    pub fn new(capacity: Resources, boot_delay: Duration, shutdown_delay: Duration) -> Self {
        MemoryHypervisor {
            inner: Arc::new(Mutex::new(Inner { vms: BTreeMap::new(), next_transition: 0 })),
            capacity,
            boot_delay,
            shutdown_delay,
            changes: Arc::new(watch::channel(0).0),
        }
    }

    fn notify(&self) {
        self.changes.send_modify(|counter| *counter += 1);
    }

    /// Pull the plug: every VM is gone at once, as when the host loses power.
    pub fn power_loss(&self) {
        self.inner.lock().unwrap().vms.clear();
        self.notify();
    }

    /// Make a running VM crash, as a guest kernel panic would.
    pub fn crash(&self, vm: VmId) -> bool {
        let found = match self.inner.lock().unwrap().vms.get_mut(&vm) {
            Some(entry) => {
                entry.state = AgentVmState::Crashed;
                true
            }
            None => false,
        };
        if found {
            self.notify();
        }
        found
    }

    /// Make a VM's guest hang: graceful shutdowns are ignored from now on.
    pub fn hang(&self, vm: VmId) -> bool {
        match self.inner.lock().unwrap().vms.get_mut(&vm) {
            Some(entry) => {
                entry.hung = true;
                true
            }
            None => false,
        }
    }

    /// The VMs and their states right now, for tests and the simulator's `list`.
    pub fn list_vms_now(&self) -> Vec<(api::VmId, &'static str)> {
        self.inner.lock().unwrap().vms.values().map(|vm| (vm.spec.vm_id, state_name(vm.state))).collect()
    }

    /// Define the VM in `state` if the host has room for it; answers the transition number.
    fn define(&self, spec: &VmSpec, state: AgentVmState) -> Result<u64, HypervisorError> {
        let mut inner = self.inner.lock().unwrap();
        if let Some(existing) = inner.vms.get(&spec.vm_id)
            && !matches!(existing.state, AgentVmState::Stopped | AgentVmState::Crashed)
        {
            return Err(HypervisorError::WrongState(spec.vm_id, state_name(existing.state)));
        }
        inner.vms.remove(&spec.vm_id);
        let (memory_used, mhz_used) = Self::in_use(&inner);
        let memory_free = self.capacity.memory_mb.saturating_sub(memory_used);
        if spec.memory_mb > memory_free {
            return Err(HypervisorError::InsufficientCapacity {
                resource: "memory (MB)",
                needed: spec.memory_mb,
                free: memory_free,
            });
        }
        let mhz_needed = u64::from(spec.cpu_mhz) * u64::from(spec.cpu_cores);
        let mhz_free = u64::from(self.capacity.cpu_mhz).saturating_sub(mhz_used);
        if mhz_needed > mhz_free {
            return Err(HypervisorError::InsufficientCapacity {
                resource: "CPU (MHz)",
                needed: mhz_needed,
                free: mhz_free,
            });
        }
        inner.next_transition += 1;
        let transition = inner.next_transition;
        inner.vms.insert(spec.vm_id, MemoryVm { spec: spec.clone(), state, transition, hung: false });
        Ok(transition)
    }

    /// What the VMs that are not stopped take.
    fn in_use(inner: &Inner) -> (u64, u64) {
        inner.vms.values().filter(|vm| !matches!(vm.state, AgentVmState::Stopped | AgentVmState::Crashed)).fold(
            (0, 0),
            |(memory, mhz), vm| {
                (memory + vm.spec.memory_mb, mhz + u64::from(vm.spec.cpu_mhz) * u64::from(vm.spec.cpu_cores))
            },
        )
    }

    /// After `delay`, move the VM to `to` if it is still in the transition that scheduled this.
    fn complete_later(&self, vm: VmId, transition: u64, delay: Duration, to: AgentVmState) {
        let this = self.clone();
        tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            let changed = match this.inner.lock().unwrap().vms.get_mut(&vm) {
                Some(entry) if entry.transition == transition => {
                    entry.state = to;
                    true
                }
                _ => false,
            };
            if changed {
                this.notify();
            }
        });
    }
}

#[async_trait]
impl Hypervisor for MemoryHypervisor {
    async fn start_vm(&self, spec: &VmSpec) -> Result<(), HypervisorError> {
        let transition = self.define(spec, AgentVmState::Starting)?;
        self.notify();
        self.complete_later(spec.vm_id, transition, self.boot_delay, AgentVmState::Running);
        Ok(())
    }

    async fn prepare_incoming(&self, spec: &VmSpec) -> Result<(), HypervisorError> {
        self.define(spec, AgentVmState::Incoming)?;
        self.notify();
        Ok(())
    }

    async fn migrate_out(&self, vm: VmId, _target_address: &str) -> Result<(), HypervisorError> {
        {
            let mut inner = self.inner.lock().unwrap();
            let entry = inner.vms.get_mut(&vm).ok_or(HypervisorError::UnknownVm(vm))?;
            if entry.state != AgentVmState::Running {
                return Err(HypervisorError::WrongState(vm, state_name(entry.state)));
            }
            entry.state = AgentVmState::MigratingOut;
        }
        self.notify();
        // Copying memory to the destination takes a moment; then the VM is gone from here.
        tokio::time::sleep(self.shutdown_delay).await;
        self.inner.lock().unwrap().vms.remove(&vm);
        self.notify();
        Ok(())
    }

    async fn finish_incoming(&self, vm: VmId) -> Result<(), HypervisorError> {
        {
            let mut inner = self.inner.lock().unwrap();
            let entry = inner.vms.get_mut(&vm).ok_or(HypervisorError::UnknownVm(vm))?;
            if entry.state != AgentVmState::Incoming {
                return Err(HypervisorError::WrongState(vm, state_name(entry.state)));
            }
            entry.state = AgentVmState::Running;
        }
        self.notify();
        Ok(())
    }

    async fn stop_vm(&self, vm: VmId, force: bool) -> Result<(), HypervisorError> {
        let (transition, hung) = {
            let mut inner = self.inner.lock().unwrap();
            inner.next_transition += 1;
            let transition = inner.next_transition;
            let entry = inner.vms.get_mut(&vm).ok_or(HypervisorError::UnknownVm(vm))?;
            if entry.state == AgentVmState::Stopped {
                return Err(HypervisorError::WrongState(vm, "stopped"));
            }
            entry.transition = transition;
            entry.state = if force { AgentVmState::Stopped } else { AgentVmState::Stopping };
            (transition, entry.hung)
        };
        self.notify();
        if !force && !hung {
            self.complete_later(vm, transition, self.shutdown_delay, AgentVmState::Stopped);
        }
        Ok(())
    }

    async fn destroy_vm(&self, vm: VmId) -> Result<(), HypervisorError> {
        let removed = {
            let mut inner = self.inner.lock().unwrap();
            // An incoming VM that never got resumed is discarded the same way (migration aborted).
            match inner.vms.get(&vm).map(|entry| entry.state) {
                None => false,
                Some(AgentVmState::Stopped | AgentVmState::Crashed | AgentVmState::Incoming) => {
                    inner.vms.remove(&vm).is_some()
                }
                Some(other) => return Err(HypervisorError::WrongState(vm, state_name(other))),
            }
        };
        if removed {
            self.notify();
        }
        Ok(())
    }

    async fn list_vms(&self) -> Vec<VmReport> {
        self.inner
            .lock()
            .unwrap()
            .vms
            .values()
            .map(|vm| VmReport {
                vm_id: vm.spec.vm_id,
                name: vm.spec.name.clone(),
                state: vm.state,
                generation: vm.spec.generation,
                stop_reason: None,
            })
            .collect()
    }

    async fn vms_on_storage(&self, storage_url: &str) -> Vec<VmId> {
        self.inner
            .lock()
            .unwrap()
            .vms
            .values()
            .filter(|vm| vm.spec.storage_url == storage_url)
            .filter(|vm| !matches!(vm.state, AgentVmState::Stopped | AgentVmState::Crashed))
            .map(|vm| vm.spec.vm_id)
            .collect()
    }

    fn changes(&self) -> watch::Receiver<u64> {
        self.changes.subscribe()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn migration_hands_over_without_two_running_copies() {
        let source = hypervisor();
        let target = hypervisor();
        let vm = spec(1024);
        source.start_vm(&vm).await.unwrap();
        tokio::time::sleep(Duration::from_secs(1)).await;
        target.prepare_incoming(&VmSpec { generation: 2, ..vm.clone() }).await.unwrap();
        assert_eq!(state_of(&target, vm.vm_id).await, Some(AgentVmState::Incoming));
        let running = |h: &MemoryHypervisor| h.list_vms_now().iter().filter(|(_, s)| *s == "running").count();
        assert_eq!(running(&source) + running(&target), 1);
        source.migrate_out(vm.vm_id, "127.0.1.2").await.unwrap();
        assert_eq!(state_of(&source, vm.vm_id).await, None, "the source forgets the VM once handed over");
        assert_eq!(running(&target), 0, "the destination waits, paused, for the finish");
        target.finish_incoming(vm.vm_id).await.unwrap();
        assert_eq!(state_of(&target, vm.vm_id).await, Some(AgentVmState::Running));
        assert!(source.migrate_out(vm.vm_id, "x").await.is_err());
    }

    #[tokio::test]
    async fn an_incoming_vm_needs_room_and_can_be_discarded() {
        let target = hypervisor();
        assert!(matches!(
            target.prepare_incoming(&spec(8192)).await,
            Err(HypervisorError::InsufficientCapacity { .. })
        ));
        let vm = spec(1024);
        target.prepare_incoming(&vm).await.unwrap();
        target.destroy_vm(vm.vm_id).await.unwrap();
        assert!(target.list_vms().await.is_empty());
    }

    fn spec(memory_mb: u64) -> VmSpec {
        VmSpec {
            vm_id: VmId::new_random(),
            name: "vm".into(),
            generation: 1,
            cpu_cores: 1,
            cpu_mhz: 1000,
            memory_mb,
            storage_url: "nfs://s/p".into(),
        }
    }

    fn hypervisor() -> MemoryHypervisor {
        MemoryHypervisor::new(
            Resources { cpu_cores: 4, cpu_mhz: 8000, memory_mb: 4096 },
            Duration::from_millis(500),
            Duration::from_millis(300),
        )
    }

    async fn state_of(hypervisor: &MemoryHypervisor, vm: VmId) -> Option<AgentVmState> {
        hypervisor.list_vms().await.into_iter().find(|report| report.vm_id == vm).map(|report| report.state)
    }

    #[tokio::test(start_paused = true)]
    async fn a_vm_boots_after_the_delay_and_stops_gracefully() {
        let hypervisor = hypervisor();
        let vm = spec(1024);
        hypervisor.start_vm(&vm).await.unwrap();
        assert_eq!(state_of(&hypervisor, vm.vm_id).await, Some(AgentVmState::Starting));
        tokio::time::sleep(Duration::from_millis(600)).await;
        assert_eq!(state_of(&hypervisor, vm.vm_id).await, Some(AgentVmState::Running));
        hypervisor.stop_vm(vm.vm_id, false).await.unwrap();
        assert_eq!(state_of(&hypervisor, vm.vm_id).await, Some(AgentVmState::Stopping));
        tokio::time::sleep(Duration::from_millis(400)).await;
        assert_eq!(state_of(&hypervisor, vm.vm_id).await, Some(AgentVmState::Stopped));
    }

    #[tokio::test(start_paused = true)]
    async fn memory_capacity_is_enforced_and_freed_by_stopping() {
        let hypervisor = hypervisor();
        let first = spec(3072);
        hypervisor.start_vm(&first).await.unwrap();
        let second = spec(2048);
        let refused = hypervisor.start_vm(&second).await.unwrap_err();
        assert_eq!(
            refused,
            HypervisorError::InsufficientCapacity { resource: "memory (MB)", needed: 2048, free: 1024 }
        );
        hypervisor.stop_vm(first.vm_id, true).await.unwrap();
        hypervisor.start_vm(&second).await.unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn a_forced_stop_during_boot_is_not_undone_by_the_boot() {
        let hypervisor = hypervisor();
        let vm = spec(512);
        hypervisor.start_vm(&vm).await.unwrap();
        hypervisor.stop_vm(vm.vm_id, true).await.unwrap();
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert_eq!(state_of(&hypervisor, vm.vm_id).await, Some(AgentVmState::Stopped));
    }

    #[tokio::test(start_paused = true)]
    async fn vms_on_a_storage_are_the_ones_not_stopped_with_disks_there() {
        let hypervisor = hypervisor();
        let here = spec(512);
        let stopped = spec(512);
        let elsewhere = VmSpec { storage_url: "nfs://other/p".into(), ..spec(512) };
        for vm in [&here, &stopped, &elsewhere] {
            hypervisor.start_vm(vm).await.unwrap();
        }
        hypervisor.stop_vm(stopped.vm_id, true).await.unwrap();
        assert_eq!(hypervisor.vms_on_storage("nfs://s/p").await, vec![here.vm_id]);
        assert_eq!(hypervisor.vms_on_storage("nfs://other/p").await, vec![elsewhere.vm_id]);
        assert!(hypervisor.vms_on_storage("nfs://none").await.is_empty());
    }

    #[tokio::test]
    async fn power_loss_forgets_every_vm() {
        let hypervisor = hypervisor();
        let changes = hypervisor.changes();
        hypervisor.start_vm(&spec(512)).await.unwrap();
        hypervisor.power_loss();
        assert!(hypervisor.list_vms().await.is_empty());
        assert!(changes.has_changed().unwrap());
    }
}
