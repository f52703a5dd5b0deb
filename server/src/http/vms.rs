//! VM power routes. They answer 202 once the agent has the command; the VM's progress arrives as events.

use super::extract::{ApiPath, Auth};
use crate::app::permission::OperateVms;
use crate::app::{AppError, vms};
use crate::state::AppState;
use api::VmId;
use api::v1::VmActionAccepted;
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
