//! Hosts as their agents announce them: registration rules and what a lost connection means.

use super::AppError;
use super::admission::{self, Admission};
use crate::db::ZoneRecord;
use crate::events::error_chain;
use crate::ha::pool::Change;
use crate::state::AppState;
use api::HostId;
use api::agent::HostRegistration;
use api::v1::VmState;

/// Validate an agent's `Hello` and record its host. The cluster must exist in the token's zone.
pub async fn register(
    state: &AppState,
    zone: &ZoneRecord,
    registration: &HostRegistration,
) -> Result<HostId, AppError> {
    let name = registration.name.trim();
    if name.is_empty() || name.len() > 128 {
        return Err(AppError::bad_request("invalid-host-name", "host name must be 1 to 128 characters"));
    }
    if registration.capacity.cpu_cores == 0 || registration.capacity.memory_mb == 0 {
        return Err(AppError::bad_request("invalid-capacity", "host capacity must have CPU cores and memory"));
    }
    let cluster = state.db.cluster_fetch_by_name(zone.zone.id, &registration.cluster).await?.ok_or_else(|| {
        AppError::bad_request(
            "unknown-cluster",
            format!("zone {:?} has no cluster named {:?}", zone.zone.name, registration.cluster),
        )
    })?;
    Ok(state.db.host_register(zone.zone.id, cluster.id, registration).await?)
}

/// The host's agent went away: the server no longer knows what its VMs do.
pub async fn mark_disconnected(state: &AppState, host_id: HostId) {
    if let Err(error) = state.db.host_set_connected(host_id, false).await {
        tracing::warn!(%host_id, error = %error_chain(&error), "cannot mark a host disconnected");
    }
    match state.db.vm_list_by_host(host_id).await {
        Ok(vms) => {
            for vm in vms {
                match state.db.vm_set_state(vm.id, VmState::Unknown, Some("the host's agent is not connected")).await {
                    Ok(Some(vm)) => state.events.publish(api::v1::Event::VmChanged { vm }),
                    Ok(None) => {}
                    Err(error) => tracing::warn!(vm = %vm.id, error = %error_chain(&error), "cannot mark a VM unknown"),
                }
            }
        }
        Err(error) => tracing::warn!(%host_id, error = %error_chain(&error), "cannot list a host's VMs"),
    }
    state.events.publish_host(&state.db, host_id).await;
}

/// Enable or disable a host for new VMs, and set its tags. Maintenance has its own path. Disabling
/// (or re-tagging, which may change dedicated HA hosts) asks admission control first; a lowered limit
/// is written in the same transaction.
pub async fn update(
    state: &AppState,
    id: HostId,
    request: api::v1::UpdateHostRequest,
    admission: &Admission,
) -> Result<api::v1::Host, AppError> {
    if request.allocation == Some(api::v1::HostAllocation::Maintenance) {
        return Err(AppError::bad_request(
            "use-maintenance-route",
            "allocation: maintenance is entered through POST /hosts/{id}/maintenance, which moves the VMs first",
        ));
    }
    if let Some(tags) = &request.tags
        && let Some(tag) = tags.iter().find(|tag| tag.is_empty() || tag.len() > 64 || tag.contains(char::is_whitespace))
    {
        return Err(AppError::bad_request(
            "invalid-host-tag",
            format!("tags: {tag:?} must be 1 to 64 characters without spaces"),
        ));
    }
    let current = state.db.host_fetch(id).await?.ok_or_else(|| AppError::NotFound(format!("no host with id {id}")))?;
    let action = match request.allocation {
        Some(allocation) if allocation != current.allocation => {
            format!(
                "setting host {} to {}",
                current.name,
                if allocation == api::v1::HostAllocation::Enabled { "enabled" } else { "disabled" }
            )
        }
        _ => format!("changing host {}", current.name),
    };
    let change = Change::UpdateHost { host: id, allocation: request.allocation, tags: request.tags.clone() };
    let verdict = admission::check(state, admission, current.cluster_id, action, change).await?;
    let host = state
        .db
        .host_update(id, request.allocation, request.tags.as_deref(), verdict.limit_change)
        .await?
        .ok_or_else(|| AppError::NotFound(format!("no host with id {id}")))?;
    let limit_lowered = verdict.limit_change.is_some();
    drop(verdict);
    state.events.publish(api::v1::Event::HostChanged { host: host.clone() });
    if limit_lowered {
        state.events.publish(api::v1::Event::InventoryChanged);
    }
    Ok(host)
}

/// Remove a host that has no VMs and whose agent is gone (a connected agent would re-register it).
/// Asks admission control first (a host that is down and empty changes no plan, so this rarely
/// refuses); a lowered limit is written in the same transaction as the removal.
pub async fn remove(state: &AppState, id: HostId, admission: &Admission) -> Result<(), AppError> {
    if state.hub.is_connected(id) {
        return Err(AppError::Conflict("the host's agent is still connected; stop the agent first".into()));
    }
    let host = state.db.host_fetch(id).await?.ok_or_else(|| AppError::NotFound(format!("no host with id {id}")))?;
    let action = format!("removing host {}", host.name);
    let verdict = admission::check(state, admission, host.cluster_id, action, Change::RemoveHost { host: id }).await?;
    if !state.db.host_delete(id, verdict.limit_change).await? {
        return Err(AppError::NotFound(format!("no host with id {id}")));
    }
    drop(verdict);
    state.events.publish(api::v1::Event::InventoryChanged);
    Ok(())
}

/// The host a running VM would move to now, or why it cannot move.
async fn destination(state: &AppState, vm: &api::v1::Vm, hosts: &[api::v1::Host]) -> Result<HostId, String> {
    let pool = state.db.storage_pool_fetch(vm.storage_pool_id).await.map_err(|error| error.to_string())?;
    if pool.is_none_or(|pool| pool.scope != api::v1::StorageScope::Cluster) {
        return Err(format!("{}: its disks are on local storage", vm.name));
    }
    let tags = state
        .db
        .offering_fetch(vm.offering_id)
        .await
        .ok()
        .flatten()
        .map(|offering| offering.host_tags)
        .unwrap_or_default();
    let cluster = vm.cluster_id.ok_or_else(|| format!("{}: its host has no cluster", vm.name))?;
    let demand = super::placement::Demand { cluster, resources: vm.resources, host_tags: &tags };
    super::placement::choose_host(hosts, &demand).map_err(|reason| format!("{}: {reason}", vm.name))
}

/// Put a host into maintenance: no new VMs go there, and its running VMs move live to other hosts
/// of the cluster, one at a time, with progress on the host. Refused, with nothing changed, when a
/// VM could not go anywhere or is in the middle of something, or when admission control refuses
/// (the moves themselves are then not checked again); a lowered limit is written in the same
/// transaction as the host's new allocation.
pub async fn enter_maintenance(state: &AppState, id: HostId, admission: &Admission) -> Result<api::v1::Host, AppError> {
    use api::v1::{HostAllocation, MaintenanceProgress, VmState};
    let mut hosts = state.db.host_list().await?;
    let host = hosts
        .iter()
        .find(|host| host.id == id)
        .cloned()
        .ok_or_else(|| AppError::NotFound(format!("no host with id {id}")))?;
    if host.allocation == HostAllocation::Maintenance {
        return Err(AppError::Conflict(format!("{} is already in maintenance", host.name)));
    }
    let vms = state.db.vm_list_by_host(id).await?;
    if let Some(busy) =
        vms.iter().find(|vm| matches!(vm.state, VmState::Starting | VmState::Stopping | VmState::Migrating))
    {
        return Err(AppError::Conflict(format!(
            "VM {:?} is {}; wait until it settles",
            busy.name,
            busy.state.as_str()
        )));
    }
    let mut running: Vec<_> =
        vms.iter().filter(|vm| matches!(vm.state, VmState::Running | VmState::Unknown)).cloned().collect();
    if !running.is_empty() && host.connection != api::v1::AgentConnection::Connected {
        return Err(AppError::Conflict(format!("{}'s agent is not connected, so its VMs cannot be moved", host.name)));
    }
    // Plan every move before changing anything, biggest VMs first, counting each planned move.
    running.sort_by_key(|vm| std::cmp::Reverse(vm.resources.memory_mb));
    hosts.retain(|other| other.id != id);
    let mut refusals = Vec::new();
    for vm in &running {
        match destination(state, vm, &hosts).await {
            Ok(target) => {
                if let Some(target) = hosts.iter_mut().find(|host| host.id == target) {
                    target.allocated.memory_mb += vm.resources.memory_mb;
                    target.allocated.cpu_mhz += vm.resources.cpu_mhz;
                }
            }
            Err(reason) => refusals.push(reason),
        }
    }
    if !refusals.is_empty() {
        return Err(AppError::Conflict(format!(
            "{} cannot enter maintenance; these VMs have nowhere to go: {}",
            host.name,
            refusals.join("; ")
        )));
    }
    let action = format!("putting host {} into maintenance", host.name);
    let verdict =
        admission::check(state, admission, host.cluster_id, action, Change::EnterMaintenance { host: id }).await?;
    state.db.host_update(id, Some(HostAllocation::Maintenance), None, verdict.limit_change).await?;
    let progress =
        MaintenanceProgress { total: running.len() as u32, finished: running.is_empty(), ..Default::default() };
    state.db.host_set_maintenance(id, Some(&progress)).await?;
    let limit_lowered = verdict.limit_change.is_some();
    drop(verdict);
    state.events.publish_host(&state.db, id).await;
    if limit_lowered {
        state.events.publish(api::v1::Event::InventoryChanged);
    }
    let task_state = state.clone();
    tokio::spawn(async move { move_away(&task_state, id, running, progress).await });
    state.db.host_fetch(id).await?.ok_or_else(|| AppError::NotFound(format!("no host with id {id}")))
}

async fn move_away(state: &AppState, id: HostId, vms: Vec<api::v1::Vm>, mut progress: api::v1::MaintenanceProgress) {
    for vm in vms {
        // Cancelled meanwhile: leave the rest where they are.
        match state.db.host_fetch(id).await {
            Ok(Some(host)) if host.allocation == api::v1::HostAllocation::Maintenance => {}
            _ => return,
        }
        progress.current = Some(vm.name.clone());
        let _ = state.db.host_set_maintenance(id, Some(&progress)).await;
        state.events.publish_host(&state.db, id).await;
        let hosts = state.db.host_list().await.unwrap_or_default();
        let result = match destination(state, &vm, &hosts).await {
            Ok(target) => super::vms::migrate_and_wait(state, vm.id, target)
                .await
                .map_err(|reason| format!("{}: {reason}", vm.name)),
            Err(reason) => Err(reason),
        };
        match result {
            Ok(()) => progress.moved += 1,
            Err(reason) => {
                tracing::warn!(host = %id, "maintenance could not move a VM: {reason}");
                progress.failed.push(reason);
            }
        }
    }
    progress.current = None;
    progress.finished = true;
    let _ = state.db.host_set_maintenance(id, Some(&progress)).await;
    state.events.publish_host(&state.db, id).await;
}

/// Leave maintenance: the host takes new VMs again. VMs already moved stay where they are.
pub async fn cancel_maintenance(state: &AppState, id: HostId) -> Result<api::v1::Host, AppError> {
    let host = state.db.host_fetch(id).await?.ok_or_else(|| AppError::NotFound(format!("no host with id {id}")))?;
    if host.allocation != api::v1::HostAllocation::Maintenance {
        return Err(AppError::Conflict(format!("{} is not in maintenance", host.name)));
    }
    state.db.host_update(id, Some(api::v1::HostAllocation::Enabled), None, None).await?;
    state.db.host_set_maintenance(id, None).await?;
    let host = state.db.host_fetch(id).await?.ok_or_else(|| AppError::NotFound(format!("no host with id {id}")))?;
    state.events.publish(api::v1::Event::HostChanged { host: host.clone() });
    Ok(host)
}
