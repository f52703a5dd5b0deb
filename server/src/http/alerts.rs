//! Alert routes: list (everyone signed in) and acknowledge (VM operators and up: the people who watch
//! the pool and act on it; read-only users only look).

use super::extract::{ApiPath, Auth};
use crate::app::permission::{OperateVms, ViewInventory};
use crate::app::{AppError, alerts};
use crate::state::AppState;
use api::v1::{Alert, AlertId, AlertQuery};
use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};

/// `GET /alerts?status=open|all&limit=N`: newest first; `open` (the default) = not acknowledged.
pub async fn list(
    _: Auth<ViewInventory>,
    State(state): State<AppState>,
    query: Result<Query<AlertQuery>, QueryRejection>,
) -> Result<Json<Vec<Alert>>, AppError> {
    let Query(query) = query.map_err(|rejection| AppError::bad_request("invalid-query", rejection.body_text()))?;
    Ok(Json(alerts::list(&state, &query).await?))
}

/// `POST /alerts/{id}/acknowledge`: 409 when someone already did.
pub async fn acknowledge(
    auth: Auth<OperateVms>,
    State(state): State<AppState>,
    ApiPath(id): ApiPath<AlertId>,
) -> Result<Json<Alert>, AppError> {
    Ok(Json(alerts::acknowledge(&state, id, &auth.user.username).await?))
}
