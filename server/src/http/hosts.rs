//! Host routes: enable/disable for new VMs, tags, maintenance, removal (pool operators and up).
//! Disabling, maintenance and removal are checked by admission control (`?overcommit=`).

use super::extract::{ApiJson, ApiPath, Auth, Overcommit};
use crate::app::permission::ManagePool;
use crate::app::{AppError, hosts};
use crate::state::AppState;
use api::HostId;
use api::v1::{Host, UpdateHostRequest};
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;

pub async fn update(
    auth: Auth<ManagePool>,
    State(state): State<AppState>,
    ApiPath(id): ApiPath<HostId>,
    overcommit: Overcommit,
    ApiJson(request): ApiJson<UpdateHostRequest>,
) -> Result<Json<Host>, AppError> {
    let admission = overcommit.admission(&auth.user)?;
    Ok(Json(hosts::update(&state, id, request, &admission).await?))
}

pub async fn remove(
    auth: Auth<ManagePool>,
    State(state): State<AppState>,
    ApiPath(id): ApiPath<HostId>,
    overcommit: Overcommit,
) -> Result<StatusCode, AppError> {
    let admission = overcommit.admission(&auth.user)?;
    hosts::remove(&state, id, &admission).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn enter_maintenance(
    auth: Auth<ManagePool>,
    State(state): State<AppState>,
    ApiPath(id): ApiPath<HostId>,
    overcommit: Overcommit,
) -> Result<(StatusCode, Json<Host>), AppError> {
    let admission = overcommit.admission(&auth.user)?;
    Ok((StatusCode::ACCEPTED, Json(hosts::enter_maintenance(&state, id, &admission).await?)))
}

pub async fn cancel_maintenance(
    _: Auth<ManagePool>,
    State(state): State<AppState>,
    ApiPath(id): ApiPath<HostId>,
) -> Result<Json<Host>, AppError> {
    Ok(Json(hosts::cancel_maintenance(&state, id).await?))
}
