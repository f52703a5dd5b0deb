//! VM power actions through the host's agent, and the VM states agents report.

use super::admission::{self, Admission};
use super::{AppError, placement};
use crate::agents::AgentError;
use crate::db::NewVm;
use crate::events::error_chain;
use crate::ha::pool::Change;
use crate::state::AppState;
use api::agent::{AgentVmState, Command, CommandOutcome, VmReport, VmSpec};
use api::v1::{DeployVmRequest, Event, RestartPriority, UpdateVmHaRequest, Vm, VmActionAccepted, VmDeployed, VmState};
use api::{HostId, VmId};
use std::collections::HashMap;

async fn fetch(state: &AppState, id: VmId) -> Result<Vm, AppError> {
    state.db.vm_fetch(id).await?.ok_or_else(|| AppError::NotFound(format!("no VM with id {id}")))
}

fn host_of(vm: &Vm) -> Result<HostId, AppError> {
    vm.host_id.ok_or_else(|| AppError::Conflict(format!("VM {:?} is not placed on any host", vm.name)))
}

/// Start a stopped VM on its host, once admission control agrees (see `admission`).
pub async fn start(state: &AppState, id: VmId, admission: &Admission) -> Result<VmActionAccepted, AppError> {
    let (vm, host, command) = prepare_start(state, id).await?;
    if !state.hub.is_connected(host) {
        // Say so before judging the plan (and before lowering any limit for a start that cannot happen).
        return Err(AgentError::NotConnected(host).into());
    }
    let cluster = vm.cluster_id.ok_or_else(|| AppError::Conflict("the VM's host has no cluster".into()))?;
    let host_name = state.db.host_fetch(host).await?.map(|host| host.name).unwrap_or_else(|| host.to_string());
    let action = format!("starting VM {:?} on {host_name}", vm.name);
    let verdict = admission::check(state, admission, cluster, action, Change::StartVm { vm: id, host }).await?;
    verdict.lower_limit_now(state).await?;
    dispatch(state, vm, host, VmState::Starting, command).await
}

/// Start without asking admission control: for a restart (the VM was running there a moment ago)
/// and for a deploy, which was checked as a whole.
pub(crate) async fn start_without_admission(state: &AppState, id: VmId) -> Result<VmActionAccepted, AppError> {
    let (vm, host, command) = prepare_start(state, id).await?;
    dispatch(state, vm, host, VmState::Starting, command).await
}

/// Everything that must hold before a start, and the command that starts the VM.
async fn prepare_start(state: &AppState, id: VmId) -> Result<(Vm, HostId, Command), AppError> {
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
    Ok((vm, host, command))
}

/// Stop a VM. A graceful stop that has not finished after the graceful-stop timeout is forced, so a
/// hung guest cannot keep a VM "stopping" forever.
pub async fn stop(state: &AppState, id: VmId, force: bool) -> Result<VmActionAccepted, AppError> {
    let vm = fetch(state, id).await?;
    let host = host_of(&vm)?;
    if !matches!(vm.state, VmState::Running | VmState::Starting | VmState::Stopping | VmState::Error) {
        return Err(AppError::Conflict(format!("VM {:?} is {}; it cannot be stopped", vm.name, vm.state.as_str())));
    }
    let generation = vm.generation;
    let command = Command::StopVm { vm_id: vm.id, generation, force };
    let accepted = dispatch(state, vm, host, VmState::Stopping, command).await?;
    if !force {
        let state = state.clone();
        tokio::spawn(async move {
            tokio::time::sleep(state.settings.graceful_stop_timeout).await;
            let still_stopping = matches!(state.db.vm_fetch(id).await, Ok(Some(vm)) if vm.state == VmState::Stopping);
            if still_stopping {
                tracing::warn!(vm = %id, "graceful stop did not finish in time; forcing it");
                if let Ok((_, in_flight)) = state.hub.send(host, Command::StopVm { vm_id: id, generation, force: true })
                {
                    let _ = in_flight.outcome().await;
                }
            }
        });
    }
    Ok(accepted)
}

/// Stop, wait until stopped, start again. Answers once the stop is under way.
pub async fn restart(state: &AppState, id: VmId) -> Result<VmActionAccepted, AppError> {
    let vm = fetch(state, id).await?;
    if vm.state != VmState::Running {
        return Err(AppError::Conflict(format!(
            "VM {:?} is {}; only a running VM can be restarted",
            vm.name,
            vm.state.as_str()
        )));
    }
    let accepted = stop(state, id, false).await?;
    let state = state.clone();
    tokio::spawn(async move {
        let deadline = tokio::time::Instant::now() + state.settings.graceful_stop_timeout * 2;
        loop {
            match state.db.vm_fetch(id).await {
                Ok(Some(vm)) if vm.state == VmState::Stopped => break,
                Ok(Some(vm)) if matches!(vm.state, VmState::Stopping | VmState::Running) => {}
                _ => return,
            }
            if tokio::time::Instant::now() > deadline {
                tracing::warn!(vm = %id, "restart abandoned: the VM did not stop");
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        }
        if let Err(error) = start_without_admission(&state, id).await {
            tracing::warn!(vm = %id, "restart could not start the VM again: {error}");
        }
    });
    Ok(accepted)
}

fn check_vm_name(name: &str) -> Result<(), AppError> {
    let valid = !name.is_empty()
        && name.len() <= 63
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        && !name.starts_with('-')
        && !name.ends_with('-');
    if valid {
        Ok(())
    } else {
        Err(AppError::bad_request("invalid-name", "name must be 1 to 63 letters, digits or inner '-' (a host name)"))
    }
}

/// Deploy a VM: validate, place (on the chosen host, or the least loaded one that fits), ask
/// admission control when it is to be started, record, and start it through the host's agent unless
/// asked not to. (A VM that is not started takes no room the failover plan counts.)
pub async fn deploy(state: &AppState, request: DeployVmRequest, admission: &Admission) -> Result<VmDeployed, AppError> {
    check_vm_name(&request.name)?;
    let network = request.network.trim();
    if network.is_empty() || network.len() > 64 {
        return Err(AppError::bad_request("invalid-network", "network must be 1 to 64 characters"));
    }
    let missing = |what: &str, id: &dyn std::fmt::Display| {
        AppError::bad_request("unknown-reference", format!("{what}: no such id {id}"))
    };
    let offering = state
        .db
        .offering_fetch(request.offering_id)
        .await?
        .ok_or_else(|| missing("offering_id", &request.offering_id))?;
    state.db.template_fetch(request.template_id).await?.ok_or_else(|| missing("template_id", &request.template_id))?;
    let pool = state
        .db
        .storage_pool_fetch(request.storage_pool_id)
        .await?
        .ok_or_else(|| missing("storage_pool_id", &request.storage_pool_id))?;
    let hosts = state.db.host_list().await?;
    let cluster = match (pool.cluster_id, pool.host_id) {
        (Some(cluster), _) => cluster,
        (None, Some(owner)) => hosts
            .iter()
            .find(|host| host.id == owner)
            .map(|host| host.cluster_id)
            .ok_or_else(|| AppError::Conflict("the local storage's host no longer exists".into()))?,
        (None, None) => {
            return Err(AppError::Conflict(format!("storage pool {:?} belongs to no cluster or host", pool.name)));
        }
    };
    let resources = api::v1::Resources {
        cpu_cores: offering.cpu_cores,
        cpu_mhz: offering.cpu_cores.saturating_mul(offering.cpu_mhz),
        memory_mb: offering.memory_mb,
    };
    let demand = placement::Demand { cluster, resources, host_tags: &offering.host_tags };
    let host_id = match request.host_id {
        Some(chosen) => {
            let host = hosts.iter().find(|host| host.id == chosen).ok_or_else(|| missing("host_id", &chosen))?;
            if let Some(reason) = placement::unfit_reason(host, &demand) {
                return Err(AppError::Conflict(format!("cannot deploy on the chosen host: {reason}")));
            }
            chosen
        }
        None => placement::choose_host(&hosts, &demand).map_err(AppError::Conflict)?,
    };
    if pool.host_id.is_some_and(|owner| owner != host_id) {
        return Err(AppError::Conflict(format!("storage pool {:?} is local to another host", pool.name)));
    }
    let restart_priority = if offering.offer_ha { RestartPriority::Restart } else { RestartPriority::DoNotRestart };
    // Held until the VM is recorded as starting, so no other admitted action takes its room meanwhile.
    let verdict = if request.start {
        let host_name = hosts.iter().find(|host| host.id == host_id).map(|host| host.name.clone()).unwrap_or_default();
        let planned = Vm {
            id: VmId::new_random(),
            name: request.name.clone(),
            zone_id: pool.zone_id,
            cluster_id: Some(cluster),
            host_id: Some(host_id),
            offering_id: offering.id,
            storage_pool_id: pool.id,
            state: VmState::Starting,
            state_reason: None,
            resources,
            ha_protected: offering.offer_ha,
            restart_priority,
            start_order: 0,
            start_delay_seconds: 0,
            template_id: request.template_id,
            network: network.to_owned(),
            generation: 1,
            updated_at: chrono::Utc::now(),
        };
        let action = format!("deploying and starting VM {:?} on {host_name}", request.name);
        Some(admission::check(state, admission, cluster, action, Change::DeployVm { vm: Box::new(planned) }).await?)
    } else {
        None
    };
    let vm = state
        .db
        .vm_insert(NewVm {
            name: &request.name,
            template_id: request.template_id,
            network,
            zone_id: pool.zone_id,
            host_id: Some(host_id),
            offering_id: offering.id,
            storage_pool_id: pool.id,
            ha_protected: offering.offer_ha,
            restart_priority,
        })
        .await?;
    if let Some(verdict) = &verdict {
        verdict.lower_limit_now(state).await?;
    }
    state.events.publish(Event::VmChanged { vm: vm.clone() });
    state.events.publish_host(&state.db, host_id).await;
    if !request.start {
        return Ok(VmDeployed { vm, command_id: None });
    }
    let started = start_without_admission(state, vm.id).await;
    drop(verdict);
    match started {
        Ok(accepted) => Ok(VmDeployed { vm: accepted.vm, command_id: Some(accepted.command_id) }),
        Err(error) => {
            // The VM exists (stopped); say so together with why it did not start.
            Err(AppError::Unavailable(format!("VM {:?} was created but could not be started: {error}", vm.name)))
        }
    }
}

/// Destroy a stopped VM: its host's agent must confirm the VM is gone before the record goes, so a
/// VM is never forgotten while it may still run.
pub async fn destroy(state: &AppState, id: VmId) -> Result<(), AppError> {
    let vm = fetch(state, id).await?;
    if !matches!(vm.state, VmState::Stopped | VmState::Error) {
        return Err(AppError::Conflict(format!(
            "VM {:?} is {}; stop it before destroying it",
            vm.name,
            vm.state.as_str()
        )));
    }
    if let Some(host) = vm.host_id {
        let (_, in_flight) = state.hub.send(host, Command::DestroyVm { vm_id: id, generation: vm.generation })?;
        match in_flight.outcome().await? {
            CommandOutcome::Done => {}
            CommandOutcome::Failed { reason } | CommandOutcome::Refused { reason } => {
                return Err(AppError::Conflict(format!("the host refused to destroy VM {:?}: {reason}", vm.name)));
            }
        }
    }
    state.db.vm_delete(id).await?;
    if let Some(host) = vm.host_id {
        state.events.publish_host(&state.db, host).await;
    }
    state.events.publish(Event::InventoryChanged);
    Ok(())
}

/// Change a VM's HA settings. Protecting a running VM (or making it `restart`) asks admission
/// control first; lowering the limit is written in the same transaction as the settings.
pub async fn update_ha(
    state: &AppState,
    id: VmId,
    request: UpdateVmHaRequest,
    admission: &Admission,
) -> Result<Vm, AppError> {
    if request.start_order.is_some_and(|order| !(0..=1000).contains(&order)) {
        return Err(AppError::bad_request("invalid-start-order", "start_order must be 0 to 1000"));
    }
    if request.start_delay_seconds.is_some_and(|delay| delay > 3600) {
        return Err(AppError::bad_request("invalid-start-delay", "start_delay_seconds must be at most 3600"));
    }
    let current = fetch(state, id).await?;
    let verdict = match current.cluster_id {
        Some(cluster) => {
            let change = Change::UpdateVmHa {
                vm: id,
                ha_protected: request.ha_protected,
                restart_priority: request.restart_priority,
            };
            let action = format!("changing the HA settings of VM {:?}", current.name);
            Some(admission::check(state, admission, cluster, action, change).await?)
        }
        // Not on any host: not in any cluster's plan.
        None => None,
    };
    let limit_change = verdict.as_ref().and_then(|verdict| verdict.limit_change);
    let vm = state
        .db
        .vm_update_ha(id, &request, limit_change)
        .await?
        .ok_or_else(|| AppError::NotFound(format!("no VM with id {id}")))?;
    drop(verdict);
    state.events.publish(Event::VmChanged { vm: vm.clone() });
    if limit_change.is_some() {
        state.events.publish(Event::InventoryChanged);
    }
    Ok(vm)
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
        AgentVmState::Incoming | AgentVmState::MigratingOut => (VmState::Migrating, None),
    }
}

/// Take an agent's complete VM list as the truth for the VMs placed on its host: a VM the hypervisor
/// does not know is not running. A reported VM placed elsewhere is logged loudly and left alone.
pub async fn apply_inventory(state: &AppState, host_id: HostId, reports: &[VmReport]) -> Result<(), AppError> {
    let by_id: HashMap<VmId, &VmReport> = reports.iter().map(|report| (report.vm_id, report)).collect();
    let placed = state.db.vm_list_by_host(host_id).await?;
    let migrating = state.migrations.lock().unwrap().clone();
    for vm in placed.iter().filter(|vm| !migrating.contains(&vm.id)) {
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
    for report in reports.iter().filter(|report| !migrating.contains(&report.vm_id)) {
        if !placed.iter().any(|vm| vm.id == report.vm_id) {
            tracing::error!(%host_id, vm = %report.vm_id, name = %report.name,
                "host reports a VM that is not placed on it");
        }
    }
    state.events.publish_host(&state.db, host_id).await;
    Ok(())
}

/// Start a live migration of a running VM to `target` (same cluster, shared storage, room there).
/// Answers once checked; the hand-over runs in the background.
pub async fn migrate(state: &AppState, id: VmId, target: HostId, admission: &Admission) -> Result<Vm, AppError> {
    let (vm, source, spec) = check_migration(state, id, target, Some(admission)).await?;
    let vm_name = vm.name.clone();
    let state_for_task = state.clone();
    tokio::spawn(async move {
        if let Err(reason) = hand_over(&state_for_task, id, source, target, spec).await {
            tracing::warn!(vm = %vm_name, "migration failed: {reason}");
        }
    });
    Ok(vm)
}

/// Everything that must hold before a migration starts (with `admission`, the failover plan too:
/// maintenance moves were checked as a whole and pass `None`); marks the VM migrating.
async fn check_migration(
    state: &AppState,
    id: VmId,
    target: HostId,
    admission: Option<&Admission>,
) -> Result<(Vm, HostId, VmSpec), AppError> {
    let vm = fetch(state, id).await?;
    let source = host_of(&vm)?;
    if vm.state != VmState::Running {
        return Err(AppError::Conflict(format!(
            "VM {:?} is {}; only a running VM can be migrated",
            vm.name,
            vm.state.as_str()
        )));
    }
    if source == target {
        return Err(AppError::bad_request("same-host", "host_id: the VM already runs on that host"));
    }
    let pool =
        state.db.storage_pool_fetch(vm.storage_pool_id).await?.ok_or_else(|| {
            AppError::Conflict(format!("VM {:?} names a primary storage that no longer exists", vm.name))
        })?;
    if pool.scope != api::v1::StorageScope::Cluster {
        return Err(AppError::Conflict(format!("VM {:?} has its disks on local storage; it cannot move", vm.name)));
    }
    let target_host = state
        .db
        .host_fetch(target)
        .await?
        .ok_or_else(|| AppError::bad_request("unknown-reference", format!("host_id: no such id {target}")))?;
    let cluster = vm.cluster_id.ok_or_else(|| AppError::Conflict("the VM's host has no cluster".into()))?;
    let offering =
        state.db.offering_fetch(vm.offering_id).await?.map(|offering| offering.host_tags).unwrap_or_default();
    let demand = placement::Demand { cluster, resources: vm.resources, host_tags: &offering };
    if let Some(reason) = placement::unfit_reason(&target_host, &demand) {
        return Err(AppError::Conflict(format!("cannot migrate to {}: {reason}", target_host.name)));
    }
    let verdict = match admission {
        Some(admission) => {
            let action = format!("migrating VM {:?} to {}", vm.name, target_host.name);
            Some(admission::check(state, admission, cluster, action, Change::MigrateVm { vm: id, to: target }).await?)
        }
        None => None,
    };
    if !state.migrations.lock().unwrap().insert(id) {
        return Err(AppError::Conflict(format!("VM {:?} is already being migrated", vm.name)));
    }
    if let Some(verdict) = &verdict
        && let Err(error) = verdict.lower_limit_now(state).await
    {
        state.migrations.lock().unwrap().remove(&id);
        return Err(error);
    }
    let spec = VmSpec {
        vm_id: vm.id,
        name: vm.name.clone(),
        generation: vm.generation + 1,
        cpu_cores: vm.resources.cpu_cores,
        cpu_mhz: vm.resources.cpu_mhz / vm.resources.cpu_cores.max(1),
        memory_mb: vm.resources.memory_mb,
        storage_url: pool.url,
    };
    let vm = match state.db.vm_set_state(id, VmState::Migrating, None).await {
        Ok(Some(vm)) => vm,
        Ok(None) => vm,
        Err(error) => {
            state.migrations.lock().unwrap().remove(&id);
            return Err(error.into());
        }
    };
    state.events.publish(Event::VmChanged { vm: vm.clone() });
    Ok((vm, source, spec))
}

async fn run_command(state: &AppState, host: HostId, command: Command) -> Result<(), String> {
    let (_, in_flight) = state.hub.send(host, command).map_err(|error| error.to_string())?;
    match in_flight.outcome().await.map_err(|error| error.to_string())? {
        CommandOutcome::Done => Ok(()),
        CommandOutcome::Failed { reason } | CommandOutcome::Refused { reason } => Err(reason),
    }
}

/// The three-step hand-over: the destination prepares (paused), the source hands over and forgets
/// the VM, the record moves, the destination resumes. At no moment do two copies run. On failure
/// the VM stays (or ends) where it really runs, with the reason shown.
async fn hand_over(state: &AppState, id: VmId, source: HostId, target: HostId, spec: VmSpec) -> Result<(), String> {
    let generation = spec.generation;
    let target_address = state.db.host_fetch(target).await.ok().flatten().map(|host| host.address).unwrap_or_default();
    let outcome = async {
        run_command(state, target, Command::PrepareMigration { vm: spec })
            .await
            .map_err(|reason| (VmState::Running, format!("migration refused by the destination: {reason}")))?;
        let out = Command::MigrateOut { vm_id: id, generation: generation - 1, target_address };
        if let Err(reason) = run_command(state, source, out).await {
            let _ = run_command(state, target, Command::DestroyVm { vm_id: id, generation }).await;
            return Err((VmState::Running, format!("migration failed at the source: {reason}")));
        }
        state.db.vm_move(id, target, generation).await.map_err(|error| (VmState::Error, error.to_string()))?;
        run_command(state, target, Command::FinishMigration { vm_id: id, generation })
            .await
            .map_err(|reason| (VmState::Error, format!("the VM arrived but did not resume: {reason}")))
    }
    .await;
    let (final_state, reason) = match &outcome {
        Ok(()) => (VmState::Running, None),
        Err((state, reason)) => (*state, Some(reason.clone())),
    };
    state.migrations.lock().unwrap().remove(&id);
    if let Ok(Some(vm)) = state.db.vm_set_state(id, final_state, reason.as_deref()).await {
        state.events.publish(Event::VmChanged { vm });
    }
    state.events.publish_host(&state.db, source).await;
    state.events.publish_host(&state.db, target).await;
    outcome.map_err(|(_, reason)| reason)
}

/// Migrate and wait for the hand-over to finish (maintenance moves VMs one at a time).
pub async fn migrate_and_wait(state: &AppState, id: VmId, target: HostId) -> Result<(), String> {
    let (_, source, spec) = check_migration(state, id, target, None).await.map_err(|error| error.to_string())?;
    hand_over(state, id, source, target, spec).await
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
