//! Host routes: enable/disable for new VMs, tags, removal (pool operators and up).

use super::extract::{ApiJson, ApiPath, Auth};
use crate::app::permission::ManagePool;
use crate::app::{AppError, hosts};
use crate::state::AppState;
use api::HostId;
use api::v1::{Host, UpdateHostRequest};
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;

pub async fn update(
    _: Auth<ManagePool>,
    State(state): State<AppState>,
    ApiPath(id): ApiPath<HostId>,
    ApiJson(request): ApiJson<UpdateHostRequest>,
) -> Result<Json<Host>, AppError> {
    Ok(Json(hosts::update(&state, id, request).await?))
}

pub async fn remove(
    _: Auth<ManagePool>,
    State(state): State<AppState>,
    ApiPath(id): ApiPath<HostId>,
) -> Result<StatusCode, AppError> {
    hosts::remove(&state, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn enter_maintenance(
    _: Auth<ManagePool>,
    State(state): State<AppState>,
    ApiPath(id): ApiPath<HostId>,
) -> Result<(StatusCode, Json<Host>), AppError> {
    Ok((StatusCode::ACCEPTED, Json(hosts::enter_maintenance(&state, id).await?)))
}

pub async fn cancel_maintenance(
    _: Auth<ManagePool>,
    State(state): State<AppState>,
    ApiPath(id): ApiPath<HostId>,
) -> Result<Json<Host>, AppError> {
    Ok(Json(hosts::cancel_maintenance(&state, id).await?))
}
