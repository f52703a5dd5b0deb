//! Cluster HA routes: the live failover plan (everyone signed in) and the host failure limit (pool
//! admins and pool operators).

use super::extract::{ApiJson, ApiPath, Auth};
use crate::app::admission::AuditNote;
use crate::app::permission::{ManageHa, ViewInventory};
use crate::app::{AppError, clusters};
use crate::state::AppState;
use api::ClusterId;
use api::v1::{ClusterHaPlan, SetFailureLimitRequest};
use axum::Json;
use axum::extract::State;

/// `GET /clusters/{id}/ha/plan`: the plan computed now from the inventory.
pub async fn plan(
    _: Auth<ViewInventory>,
    State(state): State<AppState>,
    ApiPath(id): ApiPath<ClusterId>,
) -> Result<Json<ClusterHaPlan>, AppError> {
    Ok(Json(clusters::plan(&state, id).await?))
}

/// `PUT /clusters/{id}/ha/failure-limit`: 409 `limit-above-capacity` unless `confirm_overcommit`.
pub async fn set_failure_limit(
    _: Auth<ManageHa>,
    State(state): State<AppState>,
    ApiPath(id): ApiPath<ClusterId>,
    note: AuditNote,
    ApiJson(request): ApiJson<SetFailureLimitRequest>,
) -> Result<Json<ClusterHaPlan>, AppError> {
    Ok(Json(clusters::set_failure_limit(&state, id, request, &note).await?))
}
