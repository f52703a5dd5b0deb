//! The guardian: a few times per heartbeat interval it applies the self-fence rule
//! ([`crate::self_fence`]) and the storage-outage rule to the agent's [`Health`], and acts on them. A
//! self-fence force-stops every VM (and keeps stopping any that appears; a start already under way is
//! stopped by its own command, see `connection::execute`) until a server welcomes the agent again; a lost primary storage force-stops the VMs whose disks are on it. Each stop is recorded
//! with its reason for the inventories. The guardian also pets the hardware watchdog, when there is one,
//! while everything it had to stop did stop.

use crate::health::Health;
use crate::hypervisor::{Hypervisor, HypervisorError};
use crate::self_fence::Verdict;
use crate::watchdog::Watchdog;
use api::VmId;
use api::agent::{AgentStopReason, AgentVmState};
use std::sync::Arc;
use std::time::Duration;

/// How long one forced stop (or one listing) may take before the guardian counts it as failed.
const HYPERVISOR_CALL_LIMIT: Duration = Duration::from_secs(5);

pub struct Guardian {
    pub host: String,
    pub health: Arc<Health>,
    pub hypervisor: Arc<dyn Hypervisor>,
    pub watchdog: Option<Arc<dyn Watchdog>>,
}

impl Guardian {
    /// Check and act every quarter heartbeat interval (between 50 and 250 ms) until dropped.
    pub async fn run(self) {
        loop {
            let tick = (self.health.settings().heartbeat_interval / 4)
                .clamp(Duration::from_millis(50), Duration::from_millis(250));
            let safe = self.check().await;
            if safe && let Some(watchdog) = &self.watchdog {
                watchdog.pet();
            }
            tokio::time::sleep(tick).await;
        }
    }

    /// One pass of both rules; `false` when a VM that had to stop could not be stopped.
    pub async fn check(&self) -> bool {
        let mut safe = true;
        for (storage, error) in self.health.update_lost_storage() {
            tracing::error!(
                host = %self.host, %storage,
                "primary storage lost (heartbeat writes failing for the storage timeout: {error}); stopping its VMs"
            );
        }
        // Every pass, not only when the storage is first lost: a VM whose start was already under way
        // must not stay running on it either.
        for (storage, error) in self.health.lost_storages() {
            let vms = match tokio::time::timeout(HYPERVISOR_CALL_LIMIT, self.hypervisor.vms_on_storage(&storage)).await
            {
                Ok(vms) => vms,
                Err(_) => {
                    tracing::error!(host = %self.host, %storage, "cannot list the VMs on a lost storage");
                    safe = false;
                    continue;
                }
            };
            for vm in vms {
                let reason = AgentStopReason::StorageLost { storage: storage.clone(), error: error.clone() };
                self.health.set_stop_reason(vm, reason);
                safe &= self.force_stop(vm).await;
            }
        }

        if let Verdict::FenceNow(reason) = self.health.verdict()
            && self.health.fence(reason.to_string())
        {
            tracing::error!(host = %self.host, "self-fencing: {reason}; force-stopping every VM");
        }
        if let Some(reason) = self.health.fenced() {
            let vms = match tokio::time::timeout(HYPERVISOR_CALL_LIMIT, self.hypervisor.list_vms()).await {
                Ok(vms) => vms,
                Err(_) => {
                    tracing::error!(host = %self.host, "self-fenced, but the hypervisor does not list its VMs");
                    return false;
                }
            };
            for vm in vms.iter().filter(|vm| !matches!(vm.state, AgentVmState::Stopped | AgentVmState::Crashed)) {
                self.health.set_stop_reason(vm.vm_id, AgentStopReason::SelfFenced { reason: reason.clone() });
                safe &= self.force_stop(vm.vm_id).await;
            }
            // A start that passed the start gate before the fence stops its VM itself once the
            // hypervisor returns; until then the host is not known to be safe (a start that hangs in the
            // hypervisor leaves the watchdog unpetted, and the hardware resets the host).
            safe &= self.health.start_gate().starts_in_flight == 0;
        }
        safe
    }

    /// Pull the VM's plug; `true` once it no longer runs.
    async fn force_stop(&self, vm: VmId) -> bool {
        match tokio::time::timeout(HYPERVISOR_CALL_LIMIT, self.hypervisor.stop_vm(vm, true)).await {
            Ok(Ok(()))
            | Ok(Err(HypervisorError::WrongState(_, "stopped")))
            | Ok(Err(HypervisorError::UnknownVm(_))) => true,
            Ok(Err(error)) => {
                tracing::error!(host = %self.host, %vm, "cannot force-stop a VM: {error}");
                false
            }
            Err(_) => {
                tracing::error!(host = %self.host, %vm, "force-stopping a VM did not return in time");
                false
            }
        }
    }
}
