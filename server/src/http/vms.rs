//! VM power routes. They answer 202 once the agent has the command; the VM's progress arrives as events.

use super::extract::{ApiJson, ApiPath, Auth};
use crate::app::permission::{ManageHa, ManagePool, OperateVms, Permission};
use crate::app::{AppError, vms};
use crate::state::AppState;
use api::VmId;
use api::v1::{DeployVmRequest, MigrateVmRequest, UpdateVmHaRequest, Vm, VmActionAccepted, VmDeployed};
use axum::Json;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use serde::Deserialize;

#[derive(Deserialize)]
pub struct StopOptions {
    #[serde(default)]
    force: bool,
}

pub async fn start(
    auth: Auth<OperateVms>,
    State(state): State<AppState>,
    ApiPath(id): ApiPath<VmId>,
) -> Result<(StatusCode, Json<VmActionAccepted>), AppError> {
    let accepted = vms::start(&state, id).await?;
    tracing::info!(user = %auth.user.username, vm = %accepted.vm.name, "VM start requested");
    Ok((StatusCode::ACCEPTED, Json(accepted)))
}

pub async fn stop(
    auth: Auth<OperateVms>,
    State(state): State<AppState>,
    ApiPath(id): ApiPath<VmId>,
    Query(options): Query<StopOptions>,
) -> Result<(StatusCode, Json<VmActionAccepted>), AppError> {
    let force = options.force;
    let accepted = vms::stop(&state, id, force).await?;
    tracing::info!(user = %auth.user.username, vm = %accepted.vm.name, force, "VM stop requested");
    Ok((StatusCode::ACCEPTED, Json(accepted)))
}

pub async fn restart(
    auth: Auth<OperateVms>,
    State(state): State<AppState>,
    ApiPath(id): ApiPath<VmId>,
) -> Result<(StatusCode, Json<VmActionAccepted>), AppError> {
    let accepted = vms::restart(&state, id).await?;
    tracing::info!(user = %auth.user.username, vm = %accepted.vm.name, "VM restart requested");
    Ok((StatusCode::ACCEPTED, Json(accepted)))
}

/// Deploy a VM. Choosing its host is for pool operators and up.
pub async fn deploy(
    auth: Auth<OperateVms>,
    State(state): State<AppState>,
    ApiJson(request): ApiJson<DeployVmRequest>,
) -> Result<(StatusCode, Json<VmDeployed>), AppError> {
    if request.host_id.is_some() && !ManagePool::allows(auth.user.role) {
        return Err(AppError::Forbidden(format!(
            "your role ({}) may not choose the host; leave host_id out and placement will pick one",
            auth.user.role.as_str()
        )));
    }
    let deployed = vms::deploy(&state, request).await?;
    tracing::info!(user = %auth.user.username, vm = %deployed.vm.name, "VM deployed");
    Ok((StatusCode::CREATED, Json(deployed)))
}

pub async fn destroy(
    auth: Auth<OperateVms>,
    State(state): State<AppState>,
    ApiPath(id): ApiPath<VmId>,
) -> Result<StatusCode, AppError> {
    vms::destroy(&state, id).await?;
    tracing::info!(user = %auth.user.username, vm = %id, "VM destroyed");
    Ok(StatusCode::NO_CONTENT)
}

pub async fn update_ha(
    _: Auth<ManageHa>,
    State(state): State<AppState>,
    ApiPath(id): ApiPath<VmId>,
    ApiJson(request): ApiJson<UpdateVmHaRequest>,
) -> Result<Json<Vm>, AppError> {
    Ok(Json(vms::update_ha(&state, id, request).await?))
}

/// Live-migrate a running VM to another host of its cluster (pool operators and up). Answers once the
/// move has begun (the VM shows `migrating`); its end arrives as events.
pub async fn migrate(
    auth: Auth<ManagePool>,
    State(state): State<AppState>,
    ApiPath(id): ApiPath<VmId>,
    ApiJson(request): ApiJson<MigrateVmRequest>,
) -> Result<(StatusCode, Json<Vm>), AppError> {
    let vm = vms::migrate(&state, id, request.host_id).await?;
    tracing::info!(user = %auth.user.username, vm = %vm.name, "VM migration started");
    Ok((StatusCode::ACCEPTED, Json(vm)))
}
