//! VM power actions through the host's agent, and the VM states agents report.

use super::AppError;
use crate::agents::AgentError;
use crate::events::error_chain;
use crate::state::AppState;
use api::agent::{AgentVmState, Command, CommandOutcome, VmReport, VmSpec};
use api::v1::{Event, Vm, VmActionAccepted, VmState};
use api::{HostId, VmId};
use std::collections::HashMap;

async fn fetch(state: &AppState, id: VmId) -> Result<Vm, AppError> {
    state.db.vm_fetch(id).await?.ok_or_else(|| AppError::NotFound(format!("no VM with id {id}")))
}

fn host_of(vm: &Vm) -> Result<HostId, AppError> {
    vm.host_id.ok_or_else(|| AppError::Conflict(format!("VM {:?} is not placed on any host", vm.name)))
}

pub async fn start(state: &AppState, id: VmId) -> Result<VmActionAccepted, AppError> {
    let vm = fetch(state, id).await?;
    let host = host_of(&vm)?;
    if !matches!(vm.state, VmState::Stopped | VmState::Error) {
        return Err(AppError::Conflict(format!(
            "VM {:?} is {}; only a stopped VM can be started",
            vm.name,
            vm.state.as_str()
        )));
    }
    let pool =
        state.db.storage_pool_fetch(vm.storage_pool_id).await?.ok_or_else(|| {
            AppError::Conflict(format!("VM {:?} names a primary storage that no longer exists", vm.name))
        })?;
    let command = Command::StartVm {
        vm: VmSpec {
            vm_id: vm.id,
            name: vm.name.clone(),
            generation: vm.generation,
            cpu_cores: vm.resources.cpu_cores,
            cpu_mhz: vm.resources.cpu_mhz / vm.resources.cpu_cores.max(1),
            memory_mb: vm.resources.memory_mb,
            storage_url: pool.url,
        },
    };
    dispatch(state, vm, host, VmState::Starting, command).await
}

pub async fn stop(state: &AppState, id: VmId, force: bool) -> Result<VmActionAccepted, AppError> {
    let vm = fetch(state, id).await?;
    let host = host_of(&vm)?;
    if !matches!(vm.state, VmState::Running | VmState::Starting | VmState::Stopping | VmState::Error) {
        return Err(AppError::Conflict(format!("VM {:?} is {}; it cannot be stopped", vm.name, vm.state.as_str())));
    }
    let command = Command::StopVm { vm_id: vm.id, generation: vm.generation, force };
    dispatch(state, vm, host, VmState::Stopping, command).await
}

/// Mark the VM as in transition, hand the command to the agent (undoing the mark if the agent is not
/// there), and watch for its result in the background: the answer to the client does not wait for
/// the VM to boot. The final state arrives with the agent's next inventory.
async fn dispatch(
    state: &AppState,
    vm: Vm,
    host: HostId,
    transition: VmState,
    command: Command,
) -> Result<VmActionAccepted, AppError> {
    // The mark comes first so that an inventory racing the command can never be overwritten by it.
    if let Some(updated) = state.db.vm_set_state(vm.id, transition, None).await? {
        state.events.publish(Event::VmChanged { vm: updated });
    }
    let (command_id, in_flight) = match state.hub.send(host, command) {
        Ok(sent) => sent,
        Err(error) => {
            if let Some(restored) = state.db.vm_set_state(vm.id, vm.state, vm.state_reason.as_deref()).await? {
                state.events.publish(Event::VmChanged { vm: restored });
            }
            return Err(error.into());
        }
    };
    let watcher_state = state.clone();
    let vm_id = vm.id;
    tokio::spawn(async move {
        let failure = match in_flight.outcome().await {
            Ok(CommandOutcome::Done) => None,
            Ok(CommandOutcome::Failed { reason }) | Ok(CommandOutcome::Refused { reason }) => Some(reason),
            Err(error @ AgentError::TimedOut { .. }) => Some(error.to_string()),
            // A disconnect marks the host's VMs unknown on its own.
            Err(_) => None,
        };
        if let Some(reason) = failure {
            tracing::warn!(vm = %vm_id, "VM command failed: {reason}");
            match watcher_state.db.vm_set_state(vm_id, VmState::Error, Some(&reason)).await {
                Ok(Some(vm)) => watcher_state.events.publish(Event::VmChanged { vm }),
                Ok(None) => {}
                Err(error) => {
                    tracing::warn!(vm = %vm_id, error = %error_chain(&error), "cannot record a failed command")
                }
            }
        }
    });
    let vm = fetch(state, vm.id).await?;
    Ok(VmActionAccepted { vm, command_id })
}

fn reported_state(state: AgentVmState) -> (VmState, Option<&'static str>) {
    match state {
        AgentVmState::Starting => (VmState::Starting, None),
        AgentVmState::Running => (VmState::Running, None),
        AgentVmState::Stopping => (VmState::Stopping, None),
        AgentVmState::Stopped => (VmState::Stopped, None),
        AgentVmState::Crashed => (VmState::Error, Some("the VM crashed on its host")),
    }
}

/// Take an agent's complete VM list as the truth for the VMs placed on its host: a VM the hypervisor
/// does not know is not running. A reported VM placed elsewhere is logged loudly and left alone.
pub async fn apply_inventory(state: &AppState, host_id: HostId, reports: &[VmReport]) -> Result<(), AppError> {
    let by_id: HashMap<VmId, &VmReport> = reports.iter().map(|report| (report.vm_id, report)).collect();
    let placed = state.db.vm_list_by_host(host_id).await?;
    for vm in &placed {
        let (new_state, reason) = match by_id.get(&vm.id) {
            Some(report) => reported_state(report.state),
            None => (VmState::Stopped, None),
        };
        // A VM that failed to start stays in Error with its reason until someone acts on it.
        if vm.state == VmState::Error && new_state == VmState::Stopped {
            continue;
        }
        if let Some(updated) = state.db.vm_set_state(vm.id, new_state, reason).await? {
            state.events.publish(Event::VmChanged { vm: updated });
        }
    }
    for report in reports {
        if !placed.iter().any(|vm| vm.id == report.vm_id) {
            tracing::error!(%host_id, vm = %report.vm_id, name = %report.name,
                "host reports a VM that is not placed on it");
        }
    }
    state.events.publish_host(&state.db, host_id).await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crashed_vms_are_errors_with_a_reason() {
        assert_eq!(reported_state(AgentVmState::Crashed).0, VmState::Error);
        assert!(reported_state(AgentVmState::Crashed).1.is_some());
        assert_eq!(reported_state(AgentVmState::Running), (VmState::Running, None));
    }
}
