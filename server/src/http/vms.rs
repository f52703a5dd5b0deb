//! VM power routes. They answer 202 once the agent has the command; the VM's progress arrives as events.

use super::extract::{ApiJson, ApiPath, Auth, Overcommit};
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

/// Start a stopped VM; checked by admission control (`?overcommit=` for pool operators and up).
pub async fn start(
    auth: Auth<OperateVms>,
    State(state): State<AppState>,
    ApiPath(id): ApiPath<VmId>,
    overcommit: Overcommit,
) -> Result<(StatusCode, Json<VmActionAccepted>), AppError> {
    let admission = overcommit.admission(&auth.user)?;
    let accepted = vms::start(&state, id, &admission).await?;
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

/// Deploy a VM. Choosing its host is for pool operators and up. Checked by admission control when
/// it is to be started (`?overcommit=` for pool operators and up).
pub async fn deploy(
    auth: Auth<OperateVms>,
    State(state): State<AppState>,
    overcommit: Overcommit,
    ApiJson(request): ApiJson<DeployVmRequest>,
) -> Result<(StatusCode, Json<VmDeployed>), AppError> {
    let admission = overcommit.admission(&auth.user)?;
    if request.host_id.is_some() && !ManagePool::allows(auth.user.role) {
        return Err(AppError::Forbidden(format!(
            "your role ({}) may not choose the host; leave host_id out and placement will pick one",
            auth.user.role.as_str()
        )));
    }
    let deployed = vms::deploy(&state, request, &admission).await?;
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

/// Change a VM's HA settings; checked by admission control (`?overcommit=`).
pub async fn update_ha(
    auth: Auth<ManageHa>,
    State(state): State<AppState>,
    ApiPath(id): ApiPath<VmId>,
    overcommit: Overcommit,
    ApiJson(request): ApiJson<UpdateVmHaRequest>,
) -> Result<Json<Vm>, AppError> {
    let admission = overcommit.admission(&auth.user)?;
    Ok(Json(vms::update_ha(&state, id, request, &admission).await?))
}

/// Live-migrate a running VM to another host of its cluster (pool operators and up). Answers once the
/// move has begun (the VM shows `migrating`); its end arrives as events. Checked by admission control
/// (`?overcommit=`).
pub async fn migrate(
    auth: Auth<ManagePool>,
    State(state): State<AppState>,
    ApiPath(id): ApiPath<VmId>,
    overcommit: Overcommit,
    ApiJson(request): ApiJson<MigrateVmRequest>,
) -> Result<(StatusCode, Json<Vm>), AppError> {
    let admission = overcommit.admission(&auth.user)?;
    let vm = vms::migrate(&state, id, request.host_id, &admission).await?;
    tracing::info!(user = %auth.user.username, vm = %vm.name, "VM migration started");
    Ok((StatusCode::ACCEPTED, Json(vm)))
}
