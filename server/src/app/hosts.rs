//! Hosts as their agents announce them: registration rules and what a lost connection means.

use super::AppError;
use crate::db::ZoneRecord;
use crate::events::error_chain;
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

/// Enable or disable a host for new VMs, and set its tags. Maintenance has its own path.
pub async fn update(
    state: &AppState,
    id: HostId,
    request: api::v1::UpdateHostRequest,
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
    let host = state
        .db
        .host_update(id, request.allocation, request.tags.as_deref())
        .await?
        .ok_or_else(|| AppError::NotFound(format!("no host with id {id}")))?;
    state.events.publish(api::v1::Event::HostChanged { host: host.clone() });
    Ok(host)
}

/// Remove a host that has no VMs and whose agent is gone (a connected agent would re-register it).
pub async fn remove(state: &AppState, id: HostId) -> Result<(), AppError> {
    if state.hub.is_connected(id) {
        return Err(AppError::Conflict("the host's agent is still connected; stop the agent first".into()));
    }
    if !state.db.host_delete(id).await? {
        return Err(AppError::NotFound(format!("no host with id {id}")));
    }
    state.events.publish(api::v1::Event::InventoryChanged);
    Ok(())
}
